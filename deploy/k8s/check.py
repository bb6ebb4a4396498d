#!/usr/bin/env python3
"""check.py - fails when deploy/k8s breaks its own rules.

Design. The manifests promise things that no schema validation catches: a
pod that runs as root, a probe on the wrong port, an address that names a
port nobody listens on, a NetworkPolicy that forgets a caller, a secret
pasted into a ConfigMap. This script encodes those promises (README.md in
this folder states them in prose) and checks them on:

1. every YAML file under deploy/k8s: it must parse; every kustomization's
   paths must exist; base and prod must hold no Secret value; the dev
   overlay's secret files must carry the DEV ONLY marker;
2. a "static render" of the base done here (its resources, recursively,
   plus the ConfigMaps its configMapGenerators make) - so the core rules
   run even where kubectl is not installed;
3. when kubectl is on PATH, the real `kubectl kustomize` output of the base
   and of every overlay (on a copy of the tree with symlinks resolved:
   kustomize refuses files that resolve outside the kustomization root,
   which is what Bazel's runfiles symlinks do).

The workload rules are the same for every render: security context,
resources, probes on the admin port, graceful termination, env from a
ConfigMap plus secretKeyRef only, container ports equal to the ports the
env configures, a matching headless Service (whose port must equal the
container port: DNS of a headless Service gives pod addresses, nothing
translates ports), ServiceAccount, HPA, PDB, NetworkPolicy. The network
rules are derived from configuration: every address in a service's env
(dns+tcp://<svc>.<ns>.svc.cluster.local:<port>) is an edge that the
target's ingress policy and the caller's egress policies must allow, and a
policy must not admit a running workload on a port it has no edge to
(only its callers), except the gateway's HTTP port, open to all. Egress
to addresses (ipBlock) reaches cluster-internal ranges only on the
datastore ports, and the internet only where INTERNET_EGRESS says.

Service identity: every service mounts its own <service>-identity Secret
(0400, read-only, fsGroup so its user can read it) and the service-trust
ConfigMap, and SERVICE_KEY_FILE / SERVICE_TRUST_FILE name exactly those
files; no pod refers to another service's identity Secret; a rendered
bundle is well-formed, names every service, and each rendered identity
key is its service's key in it; the operator's key (whose public half is
an "operator" bundle line anywhere in the tree) is in no file here and no
rendered object, and no operator identity is generated.

Scaling and monitoring: each HPA scales on CPU, and the services in
HPA_SIGNAL also on their own signal (realtime: a Pods metric, connections;
notifications: an External metric, its queue), named as the service's
source exports it and served by a prometheus-adapter rule in
deploy/monitoring; the monitoring files there parse, and every metric the
dashboard, the alerts and the adapter name is in the catalogue read from
the sources (metrics_counter/gauge/histogram calls in services/ and
libs/). Pods carry the scrape annotations for their admin port, spread
over nodes and zones, and get a grace period longer than preStop +
SHUTDOWN_GRACE_MS (+ REALTIME_DRAIN_MS for realtime).

Usage: check.py [--root deploy/k8s] [--dockerfile deploy/docker/Dockerfile]
                [--monitoring deploy/monitoring] [--src REPO]
                [--no-kubectl]
Exit status 0 when every rule holds, 1 otherwise (each problem printed).
"""

import argparse
import base64
import ipaddress
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile

import yaml

NAMESPACE = "platform"
# The services deployed today; each must have a folder under base/.
SERVICES = ["auth", "tenants", "orders", "gateway", "realtime", "notifications", "sync"]
# Services of the architecture that do not run yet: policies may already
# admit them by name (they match no pod until they land).
FUTURE_SERVICES = []
# Variables that are secrets wherever they appear: only ever secretKeyRef.
SECRET_VARS = re.compile(
    r"^(DATABASE_URL|REDIS_URL|AUTH_SIGNING_KEYS|TENANTS_OPERATOR_SECRET|"
    r"POSTGRES_PASSWORD|REDIS_PASSWORD|.*_SECRET|.*_PASSWORD|.*_TOKEN)$")
# Env variables that configure a listening port, and the container port
# name each must match.
LISTEN_VARS = {"RPC_LISTEN": "rpc", "BUS_LISTEN": "bus",
               "ADMIN_PORT": "admin", "HTTP_PORT": "http", "WS_PORT": "ws"}
# Services without a database (no DATABASE_URL, no migrations).
NO_DATABASE = {"gateway", "realtime"}
# Ports open to any source (the platform's front doors): workload -> port.
PUBLIC_PORTS = {"gateway": "http", "realtime": "ws"}
RUN_AS_USER = 10001
DEV_MARKER = "DEV ONLY"
# Egress to addresses (ipBlock) that may be the cluster's own - pods,
# Services, nodes, cloud metadata - only on these ports (the external
# PostgreSQL and Redis, often on private addresses).
DATASTORE_PORTS = {5432, 6379}
INTERNAL_RANGES = [ipaddress.ip_network(n) for n in (
    "0.0.0.0/8", "10.0.0.0/8", "100.64.0.0/10", "127.0.0.0/8",
    "169.254.0.0/16", "172.16.0.0/12", "192.168.0.0/16",
    "::1/128", "fc00::/7", "fe80::/10")]
# Service identity (libs/svcid, README.md "Service identity"): each
# service's key in its own Secret <service>-identity (key service.key),
# the bundle in the ConfigMap service-trust (key trust). Generated names
# carry kustomize's 10-character hash.
IDENTITY_KEY = "service.key"
TRUST_CM = "service-trust"
TRUST_KEY = "trust"
OPERATOR = "operator"
IDENTITY_SECRET_RE = re.compile(r"^([a-z][a-z0-9-]*?)-identity(-[a-z0-9]{10})?$")
TRUST_CM_RE = re.compile(rf"^{TRUST_CM}(-[a-z0-9]{{10}})?$")
HEX_SK_RE = re.compile(r"(?<![0-9a-fA-F])([0-9a-fA-F]{128})(?![0-9a-fA-F])")
PASERK_SK_RE = re.compile(r"k4\.secret\.([A-Za-z0-9_-]{86})")
# Workloads that may reach the internet on a port other than the
# datastores': tenants fetches http://<custom domain>/.well-known/... (80).
INTERNET_EGRESS = {"tenants": {80}, "notifications": {80, 443, 465, 587}}
MONITORING_NS = "monitoring"


# Shutdown waits a service adds after SHUTDOWN_GRACE_MS (variable, its
# default): realtime closes its WebSockets with 1001 and waits for them.
EXTRA_DRAIN = {"realtime": ("REALTIME_DRAIN_MS", "2000")}
# The HPA signal that fits each service besides CPU (README.md, "Scaling"):
# realtime holds connections (a Pods metric), notifications works off a
# shared queue (an External metric). The metric must be one the service
# itself exports (services/<service>/*.c) and one prometheus-adapter serves
# (deploy/monitoring/prometheus-adapter.yaml: "custom" rules for Pods,
# "external" for External).
HPA_SIGNAL = {"realtime": "Pods", "notifications": "External"}
ADAPTER_SECTION = {"Pods": "custom", "External": "external"}
# Series Prometheus makes itself, not a service.
PROMETHEUS_BUILTIN = {"up", "scrape_duration_seconds",
                      "scrape_samples_scraped"}
# Labels every scraped series gets from Prometheus and the scrape job
# (deploy/monitoring/prometheus-scrape.yaml).
TARGET_LABELS = {"job", "instance", "namespace", "pod", "service", "node"}


class Problems:
    def __init__(self):
        self.items = []
        self.context = ""

    def add(self, msg):
        self.items.append(f"[{self.context}] {msg}" if self.context else msg)


P = Problems()


# ------------------------------------------------------------ helpers --

def load_yaml_docs(path):
    with open(path, encoding="utf-8") as f:
        return [d for d in yaml.safe_load_all(f) if d is not None]


def read_env_file(path):
    """KEY=VALUE lines as kustomize's envs: reads them (# comments)."""
    out = {}
    with open(path, encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            if "=" not in line:
                P.add(f"{path}:{n}: not KEY=VALUE")
                continue
            k, v = line.split("=", 1)
            out[k.strip()] = v
    return out


def labels_of(obj):
    return (obj.get("metadata") or {}).get("labels") or {}


def selector_matches(sel, labels):
    """A LabelSelector (matchLabels/matchExpressions) against labels. An
    empty selector matches everything."""
    if sel is None:
        return False
    for k, v in (sel.get("matchLabels") or {}).items():
        if labels.get(k) != v:
            return False
    for e in sel.get("matchExpressions") or []:
        k, op, vals = e.get("key"), e.get("operator"), e.get("values") or []
        if op == "In" and labels.get(k) not in vals:
            return False
        if op == "NotIn" and labels.get(k) in vals:
            return False
        if op == "Exists" and k not in labels:
            return False
        if op == "DoesNotExist" and k in labels:
            return False
    return True


def service_selector_matches(sel, labels):
    return bool(sel) and all(labels.get(k) == v for k, v in sel.items())


_QUANT = {"": 1, "m": 1e-3, "k": 1e3, "M": 1e6, "G": 1e9, "T": 1e12,
          "Ki": 1024, "Mi": 1024 ** 2, "Gi": 1024 ** 3, "Ti": 1024 ** 4}


def quantity(q):
    m = re.fullmatch(r"([0-9.]+)(m|k|M|G|T|Ki|Mi|Gi|Ti)?", str(q))
    if not m:
        raise ValueError(f"bad quantity {q!r}")
    return float(m.group(1)) * _QUANT[m.group(2) or ""]


def duration_ms(text):
    """libs/obs CFG_DURATION_MS syntax: integer with ms, s, m, h or none."""
    m = re.fullmatch(r"(\d+)(ms|s|m|h)?", text.strip())
    if not m:
        raise ValueError(f"bad duration {text!r}")
    return int(m.group(1)) * {"ms": 1, "s": 1000, "m": 60000,
                              "h": 3600000, None: 1}[m.group(2)]


def parse_listen_port(var, value):
    if var in ("ADMIN_PORT", "HTTP_PORT", "WS_PORT"):
        return int(value)
    m = re.fullmatch(r"tcp://([^:/]+|\[[0-9a-fA-F:]+\]):(\d+)", value)
    if not m:
        raise ValueError(f"{var}={value!r} is not tcp://HOST:PORT")
    return int(m.group(2))


ADDR_RE = re.compile(r"^(dns\+tcp|tcp)://([^:/\[\]]+|\[[0-9a-fA-F:]+\]):(\d+)$")


def parse_address_list(value):
    """libs/rpc address list: comma-separated tcp:// / dns+tcp:// URLs."""
    out = []
    for part in value.split(","):
        part = part.strip()
        m = ADDR_RE.match(part)
        if not m:
            return None
        out.append((m.group(1), m.group(2), int(m.group(3))))
    return out


# ------------------------------------------------- files and sources --

def all_yaml_files(root):
    for d, dirs, files in os.walk(root):
        dirs.sort()
        for f in sorted(files):
            if f.endswith((".yaml", ".yml")):
                yield os.path.join(d, f)


def check_files(root):
    """Every YAML parses; kustomization paths exist; no secret values in
    base or prod; dev secret files are marked."""
    P.context = "files"
    docs_by_file = {}
    for path in all_yaml_files(root):
        try:
            docs_by_file[path] = load_yaml_docs(path)
        except yaml.YAMLError as e:
            P.add(f"{os.path.relpath(path, root)}: YAML error: {e}")
    if not docs_by_file:
        P.add(f"no YAML under {root}")

    for path, docs in docs_by_file.items():
        rel = os.path.relpath(path, root)
        top = rel.split(os.sep)[0]
        in_base = top == "base"
        in_prod = rel.startswith(os.path.join("overlays", "prod"))
        for doc in docs:
            if not isinstance(doc, dict):
                P.add(f"{rel}: a document that is not a mapping")
                continue
            if doc.get("kind") == "Secret" and (in_base or in_prod):
                P.add(f"{rel}: a Secret in {'base' if in_base else 'prod'}"
                      " (secret values never live in git there)")
            for var, where in literal_secret_envs(doc):
                if in_base or in_prod or where != "value-in-dev-datastore":
                    P.add(f"{rel}: {var} set literally ({where}); use "
                          "secretKeyRef")
        if os.path.basename(path) == "kustomization.yaml":
            for doc in docs:
                check_kustomization(root, path, doc, in_base, in_prod)
    check_operator_files(root)


def public_of_secret_keys(text):
    """The public halves (64 lowercase hex) of the Ed25519 secret keys in
    text: 128 hex digits (seed || public key, tools/token keygen) or a
    PASERK k4.secret."""
    out = set()
    for m in HEX_SK_RE.finditer(text):
        out.add(m.group(1)[64:].lower())
    for m in PASERK_SK_RE.finditer(text):
        try:
            raw = base64.urlsafe_b64decode(m.group(1) + "==")
        except ValueError:
            continue
        if len(raw) == 64:
            out.add(raw[32:].hex())
    return out


def bundle_key_hex(key):
    """A bundle key (64 hex or k4.public PASERK) as 64 lowercase hex, or
    None when it is neither."""
    if re.fullmatch(r"[0-9a-fA-F]{64}", key):
        return key.lower()
    m = re.fullmatch(r"k4\.public\.([A-Za-z0-9_-]{43})", key)
    if m:
        try:
            raw = base64.urlsafe_b64decode(m.group(1) + "=")
        except ValueError:
            return None
        return raw.hex() if len(raw) == 32 else None
    return None


def parse_bundle(text, where):
    """A trust bundle (libs/svcid): {service: [64-hex keys]}; problems
    added for malformed lines and for a key that speaks for two services."""
    out, owner = {}, {}
    for n, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        parts = line.split()
        key = bundle_key_hex(parts[1]) if len(parts) == 2 else None
        if key is None or not re.fullmatch(r"[a-z][a-z0-9-]{0,31}",
                                           parts[0]):
            P.add(f"{where}: trust bundle line {n} is not '<service> <64-hex"
                  " or k4.public key>'")
            continue
        if key in owner and owner[key] != parts[0]:
            P.add(f"{where}: trust bundle lists one key for {owner[key]} and "
                  f"{parts[0]} (a key speaks for one service only)")
        owner[key] = parts[0]
        out.setdefault(parts[0], []).append(key)
    return out


def check_operator_files(root):
    """The operator's secret key is in no file here, and no kustomization
    makes an operator identity: operators keep that key outside the
    cluster. The operator's public keys are taken from every bundle line
    'operator <key>' in the tree."""
    texts = {}
    for d, dirs, files in os.walk(root):
        dirs.sort()
        for f in sorted(files):
            path = os.path.join(d, f)
            try:
                with open(path, encoding="utf-8") as fh:
                    texts[os.path.relpath(path, root)] = fh.read()
            except (OSError, UnicodeDecodeError):
                continue
    operator_pubs = set()
    for text in texts.values():
        for m in re.finditer(rf"(?m)^\s*{OPERATOR}\s+(\S+)\s*$", text):
            k = bundle_key_hex(m.group(1))
            if k:
                operator_pubs.add(k)
    for rel, text in texts.items():
        if public_of_secret_keys(text) & operator_pubs:
            P.add(f"{rel}: holds the operator's secret key (it lives outside "
                  "the cluster, never in deploy/k8s)")
        if os.path.basename(rel) == "kustomization.yaml":
            for m in re.finditer(r"(?m)^\s*-?\s*name:\s*(\S+)", text):
                im = IDENTITY_SECRET_RE.match(m.group(1))
                if im and im.group(1) == OPERATOR:
                    P.add(f"{rel}: generates {m.group(1)}: the operator "
                          "identity is never deployed")


def literal_secret_envs(doc):
    """(name, how) for secret-looking env vars given a literal value
    anywhere in a workload document."""
    spec = ((doc.get("spec") or {}).get("template") or {}).get("spec") or {}
    for c in (spec.get("containers") or []) + (spec.get("initContainers")
                                                or []):
        for e in c.get("env") or []:
            if SECRET_VARS.match(e.get("name", "")) and "value" in e:
                yield e["name"], "env value"
    if doc.get("kind") == "ConfigMap":
        for k in (doc.get("data") or {}):
            if SECRET_VARS.match(k):
                yield k, "ConfigMap data"


def check_kustomization(root, path, k, in_base, in_prod):
    d = os.path.dirname(path)
    rel = os.path.relpath(path, root)

    def must_exist(p, what, want_kustomization=False):
        full = os.path.normpath(os.path.join(d, p))
        if os.path.isdir(full):
            if not os.path.exists(os.path.join(full, "kustomization.yaml")):
                P.add(f"{rel}: {what} {p}: directory without "
                      "kustomization.yaml")
        elif not os.path.isfile(full):
            P.add(f"{rel}: {what} {p} does not exist")

    for r in k.get("resources") or []:
        must_exist(r, "resource")
    for p in k.get("patches") or []:
        if "path" in p:
            must_exist(p["path"], "patch")
    for p in k.get("patchesStrategicMerge") or []:
        if isinstance(p, str) and "\n" not in p:
            must_exist(p, "patch")
    for gen_kind in ("configMapGenerator", "secretGenerator"):
        for g in k.get(gen_kind) or []:
            for f in (g.get("envs") or []) + ([g["env"]] if "env" in g
                                              else []):
                must_exist(f, f"{gen_kind} env file")
            for f in g.get("files") or []:
                must_exist(f.split("=", 1)[-1], f"{gen_kind} file")
            if gen_kind == "configMapGenerator":
                for lit in g.get("literals") or []:
                    if SECRET_VARS.match(lit.split("=", 1)[0]):
                        P.add(f"{rel}: secret {lit.split('=')[0]} in a "
                              "ConfigMap literal")
                for f in g.get("envs") or []:
                    full = os.path.join(d, f)
                    if os.path.isfile(full):
                        for key in read_env_file(full):
                            if SECRET_VARS.match(key):
                                P.add(f"{rel}: secret {key} in ConfigMap "
                                      f"env file {f}")
    if (in_base or in_prod) and k.get("secretGenerator"):
        P.add(f"{rel}: secretGenerator in {'base' if in_base else 'prod'}")
    if not in_base and not in_prod:
        for g in k.get("secretGenerator") or []:
            if g.get("literals"):
                P.add(f"{rel}: secret {g.get('name')} from literals; use a "
                      f"marked env file")
            for f in g.get("envs") or []:
                full = os.path.join(d, f)
                if os.path.isfile(full):
                    with open(full, encoding="utf-8") as fh:
                        if DEV_MARKER not in fh.read(400):
                            P.add(f"{rel}: {f} lacks the '{DEV_MARKER}' "
                                  "marker at its top")


# ------------------------------------------------------ static render --

def static_render_base(root):
    """The base as kustomize would build it, minus name hashes: resources
    collected recursively, ConfigMaps from configMapGenerator (envs and
    literals), the namespace set. Enough for the workload rules."""
    objs = []

    def walk(d, namespace):
        kpath = os.path.join(d, "kustomization.yaml")
        try:
            k = load_yaml_docs(kpath)[0]
        except (OSError, IndexError, yaml.YAMLError) as e:
            P.add(f"static render: {kpath}: {e}")
            return
        ns = k.get("namespace") or namespace
        for r in k.get("resources") or []:
            full = os.path.normpath(os.path.join(d, r))
            if os.path.isdir(full):
                walk(full, ns)
            elif os.path.isfile(full):
                for doc in load_yaml_docs(full):
                    set_ns(doc, ns)
                    objs.append(doc)
        for g in k.get("configMapGenerator") or []:
            data = {}
            for f in g.get("envs") or []:
                full = os.path.join(d, f)
                if os.path.isfile(full):
                    data.update(read_env_file(full))
            for lit in g.get("literals") or []:
                key, _, val = lit.partition("=")
                data[key] = val
            cm = {"apiVersion": "v1", "kind": "ConfigMap",
                  "metadata": {"name": g["name"]}, "data": data}
            set_ns(cm, ns)
            objs.append(cm)

    def set_ns(doc, ns):
        if ns and doc.get("kind") != "Namespace":
            doc.setdefault("metadata", {})["namespace"] = ns

    walk(os.path.join(root, "base"), None)
    return objs


def kubectl_render(root, overlay_rel):
    out = subprocess.run(["kubectl", "kustomize", os.path.join(root,
                                                               overlay_rel)],
                         capture_output=True, text=True, timeout=120)
    if out.returncode != 0:
        P.add(f"kubectl kustomize {overlay_rel} failed: "
              f"{out.stderr.strip()}")
        return None
    return [d for d in yaml.safe_load_all(out.stdout) if d]


# ------------------------------------------------------ render checks --

class Render:
    """Indexes of one rendered set of objects."""

    def __init__(self, objs):
        self.objs = objs
        self.by_kind = {}
        for o in objs:
            self.by_kind.setdefault(o.get("kind"), []).append(o)

    def kind(self, k):
        return self.by_kind.get(k, [])

    def named(self, kind, name):
        for o in self.kind(kind):
            if o["metadata"]["name"] == name:
                return o
        return None

    def workloads(self):
        return self.kind("Deployment") + self.kind("StatefulSet")


def pod_spec(w):
    return w["spec"]["template"]["spec"]


def pod_labels(w):
    return (w["spec"]["template"].get("metadata") or {}).get("labels") or {}


def container_env(r, c):
    """The container's environment: name -> literal value, or a tuple
    ("secret", name, key) / ("ref", ...) for valueFrom."""
    env = {}
    for ef in c.get("envFrom") or []:
        if "configMapRef" in ef:
            name = ef["configMapRef"]["name"]
            cm = r.named("ConfigMap", name)
            if cm is None:
                P.add(f"{c['name']}: envFrom ConfigMap {name} is not in the "
                      "render")
                continue
            env.update({k: str(v) for k, v in (cm.get("data") or {}).items()})
        if "secretRef" in ef:
            P.add(f"{c['name']}: envFrom secretRef imports every key of "
                  f"{ef['secretRef'].get('name')}; name each with "
                  "secretKeyRef")
    for e in c.get("env") or []:
        if "value" in e:
            env[e["name"]] = str(e["value"])
        elif "valueFrom" in e and "secretKeyRef" in e["valueFrom"]:
            s = e["valueFrom"]["secretKeyRef"]
            env[e["name"]] = ("secret", s["name"], s["key"])
        else:
            env[e["name"]] = ("ref",)
    return env


def check_restricted(w):
    """Pod Security "restricted" plus this project's extras, for every
    workload in the namespace (datastores of the dev overlay included)."""
    name = f"{w['kind']}/{w['metadata']['name']}"
    ps = pod_spec(w)
    psc = ps.get("securityContext") or {}
    for bad in ("hostNetwork", "hostPID", "hostIPC"):
        if ps.get(bad):
            P.add(f"{name}: {bad}")
    for v in ps.get("volumes") or []:
        if "hostPath" in v:
            P.add(f"{name}: hostPath volume {v.get('name')}")
    if ps.get("automountServiceAccountToken") is not False:
        P.add(f"{name}: automountServiceAccountToken is not false")
    if ps.get("enableServiceLinks") is not False:
        P.add(f"{name}: enableServiceLinks is not false (Kubernetes would "
              "inject <SVC>_PORT=tcp://... variables)")
    pod_seccomp = (psc.get("seccompProfile") or {}).get("type")
    for c in ps.get("containers") or []:
        cn = f"{name} container {c['name']}"
        sc = c.get("securityContext") or {}
        if sc.get("allowPrivilegeEscalation") is not False:
            P.add(f"{cn}: allowPrivilegeEscalation is not false")
        if sc.get("privileged"):
            P.add(f"{cn}: privileged")
        if sc.get("readOnlyRootFilesystem") is not True:
            P.add(f"{cn}: readOnlyRootFilesystem is not true")
        if sc.get("runAsNonRoot", psc.get("runAsNonRoot")) is not True:
            P.add(f"{cn}: runAsNonRoot is not true")
        uid = sc.get("runAsUser", psc.get("runAsUser"))
        if uid is None or uid == 0:
            P.add(f"{cn}: runAsUser unset or 0")
        caps = sc.get("capabilities") or {}
        if "ALL" not in (caps.get("drop") or []):
            P.add(f"{cn}: capabilities do not drop ALL")
        if caps.get("add"):
            P.add(f"{cn}: adds capabilities {caps['add']}")
        if (sc.get("seccompProfile") or {}).get("type", pod_seccomp) \
                != "RuntimeDefault":
            P.add(f"{cn}: seccompProfile is not RuntimeDefault")
        res = c.get("resources") or {}
        for part in ("requests", "limits"):
            for r in ("cpu", "memory"):
                if r not in (res.get(part) or {}):
                    P.add(f"{cn}: no {part}.{r}")
        try:
            for r in ("cpu", "memory"):
                rq = (res.get("requests") or {}).get(r)
                lm = (res.get("limits") or {}).get(r)
                if rq is not None and lm is not None and \
                        quantity(rq) > quantity(lm):
                    P.add(f"{cn}: requests.{r} {rq} > limits.{r} {lm}")
        except ValueError as e:
            P.add(f"{cn}: {e}")
        for e in c.get("env") or []:
            if SECRET_VARS.match(e.get("name", "")) and "value" in e:
                P.add(f"{cn}: {e['name']} is a literal; use secretKeyRef")
    sel = w["spec"].get("selector")
    if not selector_matches(sel, pod_labels(w)) or not sel:
        P.add(f"{name}: spec.selector does not match the pod template's "
              "labels")


def resolve_port(w, port):
    """A Service targetPort / probe port (number or name) -> the container
    port number in workload w, or None."""
    for c in pod_spec(w).get("containers") or []:
        for p in c.get("ports") or []:
            if port == p.get("name") or port == p.get("containerPort"):
                return p["containerPort"]
    return None


def workload_of_service(r, svc):
    sel = svc["spec"].get("selector") or {}
    return [w for w in r.workloads()
            if service_selector_matches(sel, pod_labels(w))]


def check_service_deployment(r, d, ctx):
    """The rules of a platform service's Deployment (base/<service>/)."""
    name = d["metadata"]["name"]
    ps = pod_spec(d)
    psc = ps.get("securityContext") or {}
    labels = pod_labels(d)
    if labels.get("app.kubernetes.io/name") != name:
        P.add(f"{name}: pod label app.kubernetes.io/name is not {name!r}")
    if len(ps.get("containers") or []) != 1:
        P.add(f"{name}: expected exactly one container")
        return None
    c = ps["containers"][0]
    uid = (c.get("securityContext") or {}).get("runAsUser",
                                                psc.get("runAsUser"))
    if uid != RUN_AS_USER:
        P.add(f"{name}: runAsUser {uid}, the image's user is {RUN_AS_USER}")
    if c.get("command") != [f"/usr/local/bin/{name}"]:
        P.add(f"{name}: command is {c.get('command')}, want "
              f"['/usr/local/bin/{name}'] (deploy/docker/Dockerfile)")

    env = container_env(r, c)
    for k, v in env.items():
        if SECRET_VARS.match(k) and not (isinstance(v, tuple)
                                         and v[0] == "secret"):
            P.add(f"{name}: {k} does not come from a secretKeyRef")
    for k, v in env.items():
        if isinstance(v, tuple) and v[0] == "secret":
            check_secret_ref(r, name, k, v[1], v[2], ctx)
    for k in ("LOG_LEVEL", "SHUTDOWN_GRACE_MS", "ADMIN_PORT"):
        if not isinstance(env.get(k), str):
            P.add(f"{name}: {k} not set from the ConfigMap")
    if name != "gateway" and "RPC_LISTEN" not in env:
        P.add(f"{name}: RPC_LISTEN not set")
    if name not in NO_DATABASE:
        if "DATABASE_URL" not in env:
            P.add(f"{name}: DATABASE_URL not set")
        mdir = env.get("MIGRATIONS_DIR")
        if mdir != f"/app/services/{name}/migrations":
            P.add(f"{name}: MIGRATIONS_DIR={mdir!r}, the image has "
                  f"/app/services/{name}/migrations")
    tp = env.get("GATEWAY_TRUSTED_PROXIES")
    if isinstance(tp, str):
        check_trusted_proxies(name, tp)
    if "AUTH_SIGNING_KEYS" in env and "AUTH_SIGNING_KEYS_FILE" in env:
        P.add(f"{name}: both AUTH_SIGNING_KEYS and AUTH_SIGNING_KEYS_FILE")

    check_identity(r, d, c, env, ctx)

    # Container ports == the ports the env configures, by name.
    want = {}
    for var, pname in LISTEN_VARS.items():
        v = env.get(var)
        if isinstance(v, str):
            try:
                want[pname] = parse_listen_port(var, v)
            except ValueError as e:
                P.add(f"{name}: {e}")
    have = {p.get("name"): p.get("containerPort") for p in c.get("ports")
            or []}
    if have != want:
        P.add(f"{name}: container ports {have} != ports from env {want}")

    # Probes on the admin port.
    admin = want.get("admin")
    for probe, path in (("livenessProbe", "/healthz"),
                        ("readinessProbe", "/readyz"),
                        ("startupProbe", "/healthz")):
        pr = c.get(probe)
        if not pr or "httpGet" not in pr:
            P.add(f"{name}: no httpGet {probe}")
            continue
        if pr["httpGet"].get("path") != path:
            P.add(f"{name}: {probe} path {pr['httpGet'].get('path')}, "
                  f"want {path}")
        port = resolve_port(d, pr["httpGet"].get("port"))
        if port is None or port != admin:
            P.add(f"{name}: {probe} on port {pr['httpGet'].get('port')}, "
                  f"not the admin port {admin}")

    # Termination: preStop sleep + drain < grace period.
    sleep_s = 0
    pre = ((c.get("lifecycle") or {}).get("preStop") or {})
    if "sleep" in pre:
        sleep_s = int(pre["sleep"].get("seconds", 0))
    elif "exec" in pre:
        cmd = pre["exec"].get("command") or []
        if len(cmd) == 2 and cmd[0].endswith("sleep") and cmd[1].isdigit():
            sleep_s = int(cmd[1])
    if sleep_s <= 0:
        P.add(f"{name}: no preStop sleep (endpoints must drain before "
              "SIGTERM)")
    grace = ps.get("terminationGracePeriodSeconds")
    try:
        drain = duration_ms(env.get("SHUTDOWN_GRACE_MS", "10000")) / 1000
    except ValueError as e:
        P.add(f"{name}: SHUTDOWN_GRACE_MS: {e}")
        drain = 10
    extra = ""
    if name in EXTRA_DRAIN:
        var, default = EXTRA_DRAIN[name]
        try:
            more = duration_ms(env.get(var, default)) / 1000
        except ValueError as e:
            P.add(f"{name}: {var}: {e}")
            more = 0
        drain += more
        extra = f" + {var} {more}s"
    if grace is None or grace <= sleep_s + drain:
        P.add(f"{name}: terminationGracePeriodSeconds {grace} <= preStop "
              f"{sleep_s}s + SHUTDOWN_GRACE_MS{extra} = {sleep_s + drain}s")

    # Scraped on the admin port (deploy/monitoring/prometheus-scrape.yaml
    # keeps pods by these annotations and dials the port they name).
    ann = (d["spec"]["template"].get("metadata") or {}).get(
        "annotations") or {}
    if ann.get("prometheus.io/scrape") != "true" or \
            ann.get("prometheus.io/path") != "/metrics" or \
            str(ann.get("prometheus.io/port")) != str(admin):
        P.add(f"{name}: prometheus.io annotations {ann} do not say scrape "
              f"\"true\", path /metrics, port {admin} (the admin port)")

    # Spread over nodes and zones: a node or a zone lost takes the fewest
    # replicas (README.md, "The shape of a service").
    tsc = ps.get("topologySpreadConstraints") or []
    for key in ("kubernetes.io/hostname", "topology.kubernetes.io/zone"):
        if not any(t.get("topologyKey") == key and
                   selector_matches(t.get("labelSelector"), labels)
                   for t in tsc):
            P.add(f"{name}: no topologySpreadConstraints over {key} "
                  "selecting its own pods")

    # ServiceAccount.
    sa_name = ps.get("serviceAccountName")
    sa = r.named("ServiceAccount", sa_name) if sa_name else None
    if sa is None:
        P.add(f"{name}: ServiceAccount {sa_name!r} is not in the render")
    elif sa.get("automountServiceAccountToken") is not False:
        P.add(f"{name}: ServiceAccount {sa_name} automounts its token")

    # Services selecting these pods.
    svcs = [s for s in r.kind("Service")
            if service_selector_matches(s["spec"].get("selector") or {},
                                        labels)]
    headless = [s for s in svcs if s["spec"].get("clusterIP") == "None"]
    if not headless:
        P.add(f"{name}: no headless Service selects its pods")
    for s in headless:
        sn = s["metadata"]["name"]
        if s["spec"].get("publishNotReadyAddresses"):
            P.add(f"{name}: headless Service {sn} publishes not-ready pods")
        for sp in s["spec"].get("ports") or []:
            target = resolve_port(d, sp.get("targetPort", sp.get("port")))
            if target is None:
                P.add(f"{name}: Service {sn} port {sp.get('name')} targets "
                      f"{sp.get('targetPort')}, no such container port")
            elif target != sp.get("port"):
                P.add(f"{name}: headless Service {sn} port {sp.get('port')} "
                      f"!= container port {target} (DNS gives pod addresses;"
                      " clients dial the container port)")
        exposed = {resolve_port(d, sp.get("targetPort", sp.get("port")))
                   for sp in s["spec"].get("ports") or []}
        for pname in ("rpc", "bus"):
            if pname in want and want[pname] not in exposed:
                P.add(f"{name}: headless Service {sn} lacks the {pname} port")
    if name == "gateway":
        normal = [s for s in svcs if s["spec"].get("clusterIP") != "None"]
        if not any(resolve_port(d, sp.get("targetPort")) == want.get("http")
                   for s in normal for sp in s["spec"].get("ports") or []):
            P.add("gateway: no ClusterIP Service for the HTTP port")

    # HPA.
    hpas = [h for h in r.kind("HorizontalPodAutoscaler")
            if (h["spec"].get("scaleTargetRef") or {}).get("name") == name
            and h["spec"]["scaleTargetRef"].get("kind") == "Deployment"]
    if len(hpas) != 1:
        P.add(f"{name}: {len(hpas)} HPAs target it, want 1")
    for h in hpas:
        if h.get("apiVersion") != "autoscaling/v2":
            P.add(f"{name}: HPA apiVersion {h.get('apiVersion')}")
        mn, mx = h["spec"].get("minReplicas", 1), h["spec"].get("maxReplicas")
        if mx is None or mn < 1 or mn > mx:
            P.add(f"{name}: HPA bounds {mn}..{mx}")
        cpu = [m for m in h["spec"].get("metrics") or []
               if m.get("type") == "Resource" and
               (m.get("resource") or {}).get("name") == "cpu" and
               ((m["resource"].get("target") or {}).get("type")
                == "Utilization")]
        if not cpu:
            P.add(f"{name}: HPA has no CPU Utilization metric")
        check_hpa_signal(name, h)
        reps = d["spec"].get("replicas")
        if reps is not None and mx is not None and not mn <= reps <= mx:
            P.add(f"{name}: replicas {reps} outside the HPA's {mn}..{mx}")
        if not (c.get("resources") or {}).get("requests", {}).get("cpu"):
            P.add(f"{name}: HPA on CPU utilisation needs requests.cpu")

    # PDB.
    pdbs = [p for p in r.kind("PodDisruptionBudget")
            if selector_matches(p["spec"].get("selector"), labels)]
    if len(pdbs) != 1:
        P.add(f"{name}: {len(pdbs)} PDBs select its pods, want 1")
    for p in pdbs:
        spec = p["spec"]
        if ("minAvailable" in spec) == ("maxUnavailable" in spec):
            P.add(f"{name}: PDB needs exactly one of minAvailable, "
                  "maxUnavailable")
        if spec.get("minAvailable") not in (None, 1) or \
                spec.get("maxUnavailable") not in (None, 1):
            P.add(f"{name}: PDB is not minAvailable 1 / maxUnavailable 1")
        if spec.get("minAvailable") == 1 and hpas and \
                hpas[0]["spec"].get("minReplicas", 1) < 2:
            P.add(f"{name}: PDB minAvailable 1 with a single replica blocks "
                  "every node drain")

    # NetworkPolicy of its own.
    own = [n for n in r.kind("NetworkPolicy")
           if n["spec"].get("podSelector") and
           (n["spec"]["podSelector"].get("matchLabels") or {}).get(
               "app.kubernetes.io/name") == name]
    if not own:
        P.add(f"{name}: no NetworkPolicy of its own")
    return env


def mounted_files(ps, c, kind, name_re, key):
    """Files in container c that hold `key` of a `kind` ("secret" or
    "configMap") whose name matches name_re: [(path, mode, readOnly,
    object name)]. Follows secret, configMap and projected volumes, items
    and subPath."""
    by_vol = {}
    for v in ps.get("volumes") or []:
        srcs = []
        if kind == "secret" and "secret" in v:
            sv = v["secret"]
            srcs.append((sv.get("secretName"), sv.get("items"),
                         sv.get("defaultMode")))
        if kind == "configMap" and "configMap" in v:
            cv = v["configMap"]
            srcs.append((cv.get("name"), cv.get("items"),
                         cv.get("defaultMode")))
        for src in (v.get("projected") or {}).get("sources") or []:
            if kind in src:
                sv = src[kind]
                srcs.append((sv.get("name"), sv.get("items"),
                             v["projected"].get("defaultMode")))
        for obj, items, dmode in srcs:
            if not obj or not name_re.match(obj):
                continue
            if items is None:
                files = [(key, dmode)]
            else:
                files = [(it.get("path"), it.get("mode", dmode))
                         for it in items if it.get("key") == key]
            for rel, mode in files:
                by_vol.setdefault(v.get("name"), []).append(
                    (rel, 0o644 if mode is None else mode, obj))
    out = []
    for m in c.get("volumeMounts") or []:
        for rel, mode, obj in by_vol.get(m.get("name"), []):
            sub = m.get("subPath")
            if sub:
                if sub != rel:
                    continue
                path = m["mountPath"]
            else:
                path = m["mountPath"].rstrip("/") + "/" + rel
            out.append((os.path.normpath(path), mode,
                        m.get("readOnly") is True, obj))
    return out


def secret_names_used(ps):
    """Every Secret a pod refers to: volumes (also projected), env."""
    out = set()
    for v in ps.get("volumes") or []:
        if "secret" in v:
            out.add(v["secret"].get("secretName"))
        for src in (v.get("projected") or {}).get("sources") or []:
            if "secret" in src:
                out.add(src["secret"].get("name"))
    for c in (ps.get("containers") or []) + (ps.get("initContainers") or []):
        for e in c.get("env") or []:
            ref = (e.get("valueFrom") or {}).get("secretKeyRef")
            if ref:
                out.add(ref.get("name"))
        for ef in c.get("envFrom") or []:
            if "secretRef" in ef:
                out.add(ef["secretRef"].get("name"))
    return {n for n in out if n}


def check_identity(r, d, c, env, ctx):
    """A service mounts its own identity Secret and the trust bundle,
    read-only, readable by its user only, and its settings name those
    files; it refers to no other identity Secret."""
    name = d["metadata"]["name"]
    ps = pod_spec(d)
    psc = ps.get("securityContext") or {}
    own_re = re.compile(rf"^{re.escape(name)}-identity(-[a-z0-9]{{10}})?$")
    for sn in sorted(secret_names_used(ps)):
        m = IDENTITY_SECRET_RE.match(sn)
        if m and m.group(1) != name:
            who = "the operator's" if m.group(1) == OPERATOR else \
                f"{m.group(1)}'s"
            P.add(f"{name}: refers to {who} identity Secret {sn} (a pod "
                  "holds its own key only)")
    for var, kind, obj_re, key, obj in (
            ("SERVICE_KEY_FILE", "secret", own_re, IDENTITY_KEY,
             f"Secret {name}-identity"),
            ("SERVICE_TRUST_FILE", "configMap", TRUST_CM_RE, TRUST_KEY,
             f"ConfigMap {TRUST_CM}")):
        files = mounted_files(ps, c, kind, obj_re, key)
        if not files:
            P.add(f"{name}: does not mount its {obj} (key {key})")
            continue
        val = env.get(var)
        paths = sorted({f[0] for f in files})
        if not isinstance(val, str) or os.path.normpath(val) not in paths:
            P.add(f"{name}: {var}={val!r} is not the mounted {obj} file "
                  f"{paths}")
        for path, mode, ro, objname in files:
            if not ro:
                P.add(f"{name}: {obj} mounted at {path} without readOnly")
            if kind == "secret":
                if mode & 0o077:
                    P.add(f"{name}: identity key mode {oct(mode)}: readable "
                          "beyond its owner (want 0400)")
                if psc.get("fsGroup") is None and not mode & 0o004:
                    P.add(f"{name}: no fsGroup: the {oct(mode)} identity key "
                          "belongs to root and the service's user cannot "
                          "read it")
            if ctx["secrets_in_render"]:
                o = r.named("Secret" if kind == "secret" else "ConfigMap",
                            objname)
                if o is None:
                    P.add(f"{name}: {obj} ({objname}) is not in the render")
                elif key not in (o.get("data") or {}) and \
                        key not in (o.get("stringData") or {}):
                    P.add(f"{name}: {objname} has no key {key}")
            else:
                doc = f"{name}-identity" if kind == "secret" else TRUST_CM
                if f"`{doc}`" not in ctx["readme"]:
                    P.add(f"{name}: external {obj} is not documented in "
                          "deploy/k8s/README.md")


def check_identity_objects(r, ctx):
    """The bundle (when rendered) is well-formed and names every service;
    each identity Secret's key is its service's key in the bundle; no
    operator identity and no operator key in any rendered object."""
    bundle = None
    for cm in r.kind("ConfigMap"):
        if TRUST_CM_RE.match(cm["metadata"]["name"]):
            data = cm.get("data") or {}
            if TRUST_KEY not in data:
                P.add(f"ConfigMap {cm['metadata']['name']} has no key "
                      f"{TRUST_KEY}")
                continue
            bundle = parse_bundle(data[TRUST_KEY],
                                  f"ConfigMap {cm['metadata']['name']}")
    if bundle is None:
        if ctx["secrets_in_render"]:
            P.add(f"no ConfigMap {TRUST_CM} in the render")
        operator_pubs = set()
    else:
        for svc in SERVICES:
            if svc not in bundle:
                P.add(f"trust bundle has no key for {svc}")
        operator_pubs = set(bundle.get(OPERATOR, []))
    for kind in ("Secret", "ConfigMap"):
        for o in r.kind(kind):
            on = o["metadata"]["name"]
            m = IDENTITY_SECRET_RE.match(on)
            if m and m.group(1) == OPERATOR:
                P.add(f"{kind} {on}: the operator identity is never "
                      "deployed")
            for k in list((o.get("data") or {})) + \
                    list((o.get("stringData") or {})):
                if kind == "Secret":
                    val = secret_value(r, on, k) or ""
                else:
                    val = str(o["data"][k])
                if public_of_secret_keys(val) & operator_pubs:
                    P.add(f"{kind} {on}: holds the operator's secret key")
                if kind == "Secret" and m and k == IDENTITY_KEY and \
                        bundle is not None and m.group(1) != OPERATOR:
                    pubs = public_of_secret_keys(val)
                    if len(pubs) != 1 or not val.strip() or \
                            len(val.strip()) not in (128, 96):
                        P.add(f"Secret {on}: {IDENTITY_KEY} is not one "
                              "128-hex or k4.secret key")
                    elif not pubs <= set(bundle.get(m.group(1), [])):
                        P.add(f"Secret {on}: {m.group(1)}'s key is not in "
                              f"the trust bundle as {m.group(1)}")


def check_trusted_proxies(who, value):
    """GATEWAY_TRUSTED_PROXIES: CIDRs or bare addresses; a network that
    holds every address (/0) would let any client name itself in
    X-Forwarded-For and pick its own rate-limit bucket."""
    for part in value.split(","):
        part = part.strip()
        if not part:
            continue
        try:
            net = ipaddress.ip_network(part, strict=False)
        except ValueError:
            P.add(f"{who}: GATEWAY_TRUSTED_PROXIES entry {part!r} is not a "
                  "CIDR or address")
            continue
        if net.prefixlen == 0:
            P.add(f"{who}: GATEWAY_TRUSTED_PROXIES trusts every address "
                  f"({part}): any client could choose its own bucket")


def check_secret_ref(r, who, var, secret, key, ctx):
    s = r.named("Secret", secret)
    if s is None:
        if ctx["secrets_in_render"]:
            P.add(f"{who}: {var} from Secret {secret}, which is not in the "
                  "render")
        elif secret not in ctx["readme"] or key not in ctx["readme"]:
            P.add(f"{who}: external Secret {secret} (key {key}) is not "
                  "documented in deploy/k8s/README.md")
        return
    data = s.get("data") or {}
    sdata = s.get("stringData") or {}
    if key not in data and key not in sdata:
        P.add(f"{who}: Secret {secret} has no key {key}")


def secret_value(r, secret, key):
    s = r.named("Secret", secret)
    if s is None:
        return None
    if key in (s.get("stringData") or {}):
        return s["stringData"][key]
    if key in (s.get("data") or {}):
        return base64.b64decode(s["data"][key]).decode()
    return None


# ---------------------------------------------------------- network --

def peer_matches(peer, src_labels, src_ns, dst_ns, ns_labels):
    """A NetworkPolicy peer against a source pod."""
    if "ipBlock" in peer:
        return False  # pods are not matched by ipBlock here
    nsel = peer.get("namespaceSelector")
    psel = peer.get("podSelector")
    if nsel is None:
        if src_ns != dst_ns:
            return False
    elif not selector_matches(nsel, ns_labels(src_ns)):
        return False
    return psel is None or selector_matches(psel, src_labels)


def port_matches(rule_ports, port, proto, named):
    if not rule_ports:
        return True
    for p in rule_ports:
        if p.get("protocol", "TCP") != proto:
            continue
        if "port" not in p:
            return True
        rp = p["port"]
        if rp == port or (isinstance(rp, str) and named.get(rp) == port):
            return True
        if isinstance(rp, int) and p.get("endPort") and \
                rp <= port <= p["endPort"]:
            return True
    return False


def allowed(r, direction, subject, other, port, proto="TCP"):
    """Whether traffic on port is allowed in `direction` ("Ingress": from
    other into subject; "Egress": from subject to other). subject/other
    are (labels, namespace, named_ports)."""
    s_labels, s_ns, s_named = subject
    o_labels, o_ns, o_named = other
    ns_labels = namespace_labels(r)
    key = "ingress" if direction == "Ingress" else "egress"
    peer_key = "from" if direction == "Ingress" else "to"
    selecting = [n for n in r.kind("NetworkPolicy")
                 if n["metadata"].get("namespace") == s_ns and
                 selector_matches(n["spec"].get("podSelector", {}), s_labels)
                 and direction in (n["spec"].get("policyTypes") or
                                   ["Ingress"])]
    if not selecting:
        return True
    named = s_named if direction == "Ingress" else o_named
    for n in selecting:
        for rule in n["spec"].get(key) or []:
            peers = rule.get(peer_key)
            if peers is not None and not any(
                    peer_matches(p, o_labels, o_ns, s_ns, ns_labels)
                    for p in peers):
                continue
            if port_matches(rule.get("ports"), port, proto, named):
                return True
    return False


def namespace_labels(r):
    labels = {}
    for n in r.kind("Namespace"):
        nm = n["metadata"]["name"]
        labels[nm] = dict(labels_of(n))
        labels[nm]["kubernetes.io/metadata.name"] = nm
    return lambda ns: labels.get(
        ns, {"kubernetes.io/metadata.name": ns})


def named_ports(w):
    out = {}
    for c in pod_spec(w).get("containers") or []:
        for p in c.get("ports") or []:
            if p.get("name"):
                out[p["name"]] = p["containerPort"]
    return out


def endpoint(w):
    return (pod_labels(w), w["metadata"].get("namespace"), named_ports(w))


def resolve_fqdn(r, host, port, who, var):
    """<svc>.<ns>.svc.cluster.local:port -> (workload, container port)."""
    m = re.fullmatch(r"([a-z0-9-]+)\.([a-z0-9-]+)\.svc\.cluster\.local\.?",
                     host)
    if not m:
        P.add(f"{who}: {var}: {host} is not <svc>.<ns>.svc.cluster.local")
        return None
    svc_name, ns = m.groups()
    if ns != NAMESPACE:
        P.add(f"{who}: {var}: namespace {ns}, the render's is {NAMESPACE}")
    svc = r.named("Service", svc_name)
    if svc is None:
        P.add(f"{who}: {var}: no Service {svc_name} in the render")
        return None
    sp = [p for p in svc["spec"].get("ports") or [] if p.get("port") == port]
    if not sp:
        P.add(f"{who}: {var}: Service {svc_name} has no port {port}")
        return None
    ws = workload_of_service(r, svc)
    if len(ws) != 1:
        P.add(f"{who}: {var}: Service {svc_name} selects {len(ws)} workloads")
        return None
    target = resolve_port(ws[0], sp[0].get("targetPort", port))
    if target is None:
        P.add(f"{who}: {var}: Service {svc_name} port {port} targets no "
              "container port")
        return None
    if svc["spec"].get("clusterIP") == "None" and target != port:
        P.add(f"{who}: {var}: headless {svc_name}:{port} but the pods "
              f"listen on {target}")
    return ws[0], target


def edges_of(r, w, env, ctx):
    """(target workload, container port, variable) for every address in
    w's environment: service addresses, and in renders with Secrets the
    database and Redis URLs."""
    who = w["metadata"]["name"]
    out = []
    for var, v in env.items():
        if var in LISTEN_VARS:
            continue
        if isinstance(v, tuple) and v[0] == "secret" and \
                var in ("DATABASE_URL", "REDIS_URL"):
            val = secret_value(r, v[1], v[2])
            if val is None:
                continue
            m = re.match(r"^[a-z]+://(?:[^@/]*@)?([^:/?]+)(?::(\d+))?", val)
            if not m:
                P.add(f"{who}: {var} in Secret {v[1]} is not a URL")
                continue
            host = m.group(1)
            port = int(m.group(2) or (5432 if var == "DATABASE_URL"
                                      else 6379))
            if host.endswith(".svc.cluster.local"):
                t = resolve_fqdn(r, host, port, who, var)
                if t:
                    out.append((t[0], t[1], var))
            continue
        if not isinstance(v, str) or "tcp://" not in v:
            continue
        addrs = parse_address_list(v)
        if addrs is None:
            P.add(f"{who}: {var}={v!r} is not an address list")
            continue
        for scheme, host, port in addrs:
            if scheme != "dns+tcp":
                P.add(f"{who}: {var} uses {scheme}://{host}:{port}; in the "
                      "cluster every address is dns+tcp:// (all replicas)")
                continue
            t = resolve_fqdn(r, host, port, who, var)
            if t:
                out.append((t[0], t[1], var))
    return out


def check_network(r, service_envs, ctx):
    deny = [n for n in r.kind("NetworkPolicy")
            if n["spec"].get("podSelector") == {} and
            "Ingress" in (n["spec"].get("policyTypes") or []) and
            not n["spec"].get("ingress")]
    if not deny:
        P.add("no default-deny ingress NetworkPolicy in the namespace")
    deny_egress = any(n["spec"].get("podSelector") == {} and
                      "Egress" in (n["spec"].get("policyTypes") or []) and
                      not n["spec"].get("egress")
                      for n in r.kind("NetworkPolicy"))
    known = set(SERVICES + FUTURE_SERVICES +
                [w["metadata"]["name"] for w in r.workloads()])
    for n in r.kind("NetworkPolicy"):
        for direction in ("ingress", "egress"):
            for rule in n["spec"].get(direction) or []:
                for peer in rule.get("from", []) + rule.get("to", []):
                    for e in (peer.get("podSelector") or {}).get(
                            "matchExpressions") or []:
                        if e.get("key") == "app.kubernetes.io/name":
                            for v in e.get("values") or []:
                                if v not in known:
                                    P.add(f"NetworkPolicy {n['metadata']['name']}"
                                          f": unknown service {v!r}")

    # Edges from configuration must be allowed both ways.
    edges = set()
    by_name = {w["metadata"]["name"]: w for w in r.workloads()}
    for src_name, env in service_envs.items():
        src = by_name[src_name]
        for dst, port, var in edges_of(r, src, env, ctx):
            dn = dst["metadata"]["name"]
            edges.add((src_name, dn, port))
            if not allowed(r, "Ingress", endpoint(dst), endpoint(src), port):
                P.add(f"{dn}'s NetworkPolicy does not admit {src_name} on "
                      f"{port} ({src_name}'s {var})")
            if not allowed(r, "Egress", endpoint(src), endpoint(dst), port):
                P.add(f"egress from {src_name} to {dn}:{port} is denied "
                      f"({var})")
    if deny_egress:
        dns = ({"k8s-app": "kube-dns"}, "kube-system", {})
        for name in service_envs:
            if not allowed(r, "Egress", endpoint(by_name[name]), dns, 53,
                           "UDP"):
                P.add(f"{name}: egress to kube-dns (UDP 53) is denied")

    # Only its callers: no running workload admitted on a port it has no
    # configured edge to; only the gateway's HTTP port is open to all;
    # admin ports only from the monitoring namespace.
    monitoring = ({}, MONITORING_NS, {})
    outsider = ({"app.kubernetes.io/name": "intruder"}, "elsewhere", {})
    for w in r.workloads():
        wn = w["metadata"]["name"]
        for pname, port in named_ports(w).items():
            open_to_all = allowed(r, "Ingress", endpoint(w), outsider, port)
            public = PUBLIC_PORTS.get(wn) == pname
            if open_to_all and not public:
                P.add(f"{wn}: port {pname} ({port}) is open to any source")
            if not open_to_all and public:
                P.add(f"{wn}: {pname} port is not reachable from outside")
            if pname == "admin" and wn in service_envs and not allowed(
                    r, "Ingress", endpoint(w), monitoring, port):
                P.add(f"{wn}: admin port not reachable from the "
                      f"{MONITORING_NS} namespace")
            for src in r.workloads():
                sn = src["metadata"]["name"]
                if (sn, wn, port) in edges or not allowed(
                        r, "Ingress", endpoint(w), endpoint(src), port):
                    continue
                if open_to_all:
                    continue
                P.add(f"{wn}: admits {sn} on {pname} ({port}), but {sn}'s "
                      "configuration names no such address")


def check_ip_egress(r):
    """ipBlock egress: cluster-internal ranges only on the datastore
    ports; the internet on other ports only for INTERNET_EGRESS."""
    for n in r.kind("NetworkPolicy"):
        nn = n["metadata"]["name"]
        spec = n["spec"]
        if "Egress" not in (spec.get("policyTypes") or []):
            continue
        selected = [w["metadata"]["name"] for w in r.workloads()
                    if w["metadata"].get("namespace") ==
                    n["metadata"].get("namespace") and
                    selector_matches(spec.get("podSelector", {}),
                                     pod_labels(w))]
        for rule in spec.get("egress") or []:
            ports = {p.get("port") for p in rule.get("ports") or []}
            if not rule.get("ports") or any(p.get("endPort") or
                                            not isinstance(p.get("port"), int)
                                            for p in rule["ports"]):
                ports = None  # every port, or a range/name: treat as any
            beyond = None if ports is None else ports - DATASTORE_PORTS
            for peer in rule.get("to") or []:
                ib = peer.get("ipBlock")
                if not ib:
                    continue
                try:
                    net = ipaddress.ip_network(ib["cidr"], strict=False)
                    excepts = [ipaddress.ip_network(e, strict=False)
                               for e in ib.get("except") or []]
                except (KeyError, ValueError) as e:
                    P.add(f"NetworkPolicy {nn}: bad ipBlock {ib}: {e}")
                    continue
                if beyond is not None and not beyond:
                    continue  # datastore ports only
                what = "every port" if ports is None else \
                    ",".join(str(p) for p in sorted(beyond))
                for rng in INTERNAL_RANGES:
                    if rng.version != net.version or \
                            not rng.overlaps(net):
                        continue
                    if any(e.version == rng.version and
                           rng.subnet_of(e) for e in excepts):
                        continue
                    P.add(f"NetworkPolicy {nn}: egress to {rng} (cluster-"
                          f"internal) on {what}; only the datastore ports "
                          "may reach internal ranges")
                if net.prefixlen <= 1:
                    for wn in selected:
                        ok = INTERNET_EGRESS.get(wn, set())
                        if ports is None or not beyond <= ok:
                            P.add(f"NetworkPolicy {nn}: {wn} may reach the "
                                  f"internet on {what} (allowed: "
                                  f"{sorted(ok) or 'none'})")


def check_dev_secret_values(r):
    """Formats the services check at start, caught here instead."""
    for s in r.kind("Secret"):
        for key in (s.get("data") or {}):
            val = secret_value(r, s["metadata"]["name"], key)
            if key == "AUTH_SIGNING_KEYS":
                for k in val.split(","):
                    k = k.strip()
                    if not (re.fullmatch(r"[0-9a-f]{64}|[0-9a-f]{128}", k)
                            or k.startswith("k4.public.")):
                        P.add(f"Secret {s['metadata']['name']}: an "
                              "AUTH_SIGNING_KEYS entry is not 64/128 hex "
                              "digits or k4.public")
            if key == "TENANTS_OPERATOR_SECRET" and len(val) < 16:
                P.add(f"Secret {s['metadata']['name']}: "
                      "TENANTS_OPERATOR_SECRET shorter than 16 bytes")


def check_render(objs, label, ctx):
    P.context = label
    r = Render(objs)
    nss = [n["metadata"]["name"] for n in r.kind("Namespace")]
    if nss != [NAMESPACE]:
        P.add(f"namespaces {nss}, want [{NAMESPACE!r}]")
    elif labels_of(r.kind("Namespace")[0]).get(
            "pod-security.kubernetes.io/enforce") != "restricted":
        P.add("namespace does not enforce Pod Security 'restricted'")
    for o in objs:
        if o.get("kind") != "Namespace" and \
                o["metadata"].get("namespace") != NAMESPACE:
            P.add(f"{o['kind']}/{o['metadata']['name']}: namespace "
                  f"{o['metadata'].get('namespace')}")
    names = [d["metadata"]["name"] for d in r.kind("Deployment")]
    for s in SERVICES:
        if s not in names:
            P.add(f"no Deployment {s}")
    for w in r.workloads():
        check_restricted(w)
    service_envs = {}
    for d in r.kind("Deployment"):
        comp = labels_of(d).get("app.kubernetes.io/component")
        if comp in ("backend", "edge"):
            P.context = f"{label}: {d['metadata']['name']}"
            env = check_service_deployment(r, d, ctx)
            if env is not None:
                service_envs[d["metadata"]["name"]] = env
        elif d["metadata"]["name"] in SERVICES or comp != "datastore" or \
                not ctx["secrets_in_render"]:
            # Only the dev overlay's in-cluster datastores are exempt from
            # the service rules (they still pass check_restricted).
            P.add(f"Deployment {d['metadata']['name']}: component label "
                  f"{comp!r}, want backend or edge (datastore: dev only)")
    P.context = label
    for s in r.kind("Service"):
        if not workload_of_service(r, s):
            P.add(f"Service {s['metadata']['name']} selects no workload")
    check_network(r, service_envs, ctx)
    check_ip_egress(r)
    check_identity_objects(r, ctx)
    if ctx["secrets_in_render"]:
        check_dev_secret_values(r)
    return r


def check_dockerfile(path):
    P.context = "Dockerfile"
    try:
        text = open(path, encoding="utf-8").read()
    except OSError as e:
        P.add(f"cannot read {path}: {e}")
        return
    stages = re.split(r"(?m)^FROM ", text)
    runtime = stages[-1]
    if not runtime.startswith("debian:${DEBIAN_RELEASE}-slim") and \
            not runtime.startswith("debian:bookworm-slim"):
        P.add("the last stage is not debian bookworm-slim")
    for lib in ("libnng1", "libprotobuf-c1", "libpq5", "libhiredis0.14",
                "libsodium23", "libjansson4", "libcurl4", "libmicrohttpd12",
                "libwebsockets17", "libwebsockets-evlib-ev"):
        if not re.search(rf"\b{re.escape(lib)}\b", runtime):
            P.add(f"runtime stage does not install {lib}")
    if re.search(r"-dev\b", runtime):
        P.add("runtime stage installs -dev packages")
    if not re.search(rf"(?m)^USER {RUN_AS_USER}(:{RUN_AS_USER})?\s*$",
                     runtime):
        P.add(f"runtime stage does not end as USER {RUN_AS_USER}")
    if "/usr/local/bin/" not in runtime or "/app/" not in runtime:
        P.add("binaries not in /usr/local/bin or migrations not in /app")


# ---------------------------------------------------------- monitoring --
#
# deploy/monitoring holds what an operator adds to Prometheus and Grafana:
# the scrape configuration, prometheus-adapter's rules (the HPAs' Pods and
# External metrics), alerting rules and a Grafana dashboard. Every metric
# they name must be one a service exports: the catalogue is read from the
# sources (metrics_counter/gauge/histogram("name", ...) in services/ and
# libs/, tests excluded), so a renamed or invented metric fails here.

MON = {"metrics": None, "adapter": None}
METRIC_DEF_RE = re.compile(
    r'metrics_(counter|gauge|histogram)\s*\(\s*"([A-Za-z_:][A-Za-z0-9_:]*)"')
PROMQL_WORDS = {"by", "without", "on", "ignoring", "group_left",
                "group_right", "bool", "and", "or", "unless", "offset",
                "inf", "nan"}
HISTOGRAM_SUFFIXES = ("_bucket", "_sum", "_count")


def find_sources(explicit):
    """The source tree: --src, or the tree this script lives in (through
    Bazel's runfiles symlinks, whose targets are the source files)."""
    cands = [explicit] if explicit else [
        os.path.join(os.path.dirname(os.path.realpath(__file__)), "..", "..")]
    for c in cands:
        if c and os.path.isdir(os.path.join(c, "services")) and \
                os.path.isdir(os.path.join(c, "libs")):
            return os.path.abspath(c)
    return None


LABEL_ARGS_RE = re.compile(r",\s*(\d+)\s*,\s*([A-Za-z_][A-Za-z0-9_]*)")


def metric_labels(text, m):
    """The label names of the family defined at match m: the nlabels and
    label_names arguments after the help text (a count and an array
    variable, or 0 and NULL), the array's strings looked up in its
    definition before the call. None when they cannot be read."""
    a = LABEL_ARGS_RE.search(text, m.end(), m.end() + 400)
    if not a:
        return None
    if a.group(1) == "0":
        return frozenset()
    defs = list(re.finditer(
        rf"\b{a.group(2)}\s*\[\s*\d*\s*\]\s*=\s*\{{([^}}]*)\}}",
        text[:m.start()]))
    if not defs:
        return None
    names = re.findall(r'"([A-Za-z_][A-Za-z0-9_]*)"', defs[-1].group(1))
    return frozenset(names) if len(names) == int(a.group(1)) else None


def source_metrics(src):
    """{name: (kind, owner, labels)}: owner is the service for
    services/<svc>/, "libs" for the libraries every service links; labels
    a frozenset of label names, or None when not readable."""
    cat = {}
    for top in ("services", "libs"):
        for d, dirs, files in os.walk(os.path.join(src, top)):
            dirs.sort()
            for f in sorted(files):
                if not f.endswith(".c") or f.endswith("_test.c"):
                    continue
                path = os.path.join(d, f)
                parts = os.path.relpath(path, src).split(os.sep)
                owner = parts[1] if parts[0] == "services" else "libs"
                with open(path, encoding="utf-8", errors="replace") as fh:
                    text = fh.read()
                for m in METRIC_DEF_RE.finditer(text):
                    cat.setdefault(m.group(2), (m.group(1), owner,
                                                metric_labels(text, m)))
    return cat


def promql_metrics(expr):
    """Metric names in a PromQL expression (good enough for ours: strings,
    label matchers, ranges, grouping clauses and Grafana variables are cut
    out; an identifier followed by "(" is a function)."""
    e = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)
    e = re.sub(r"'(?:[^'\\]|\\.)*'", "''", e)
    e = re.sub(r"\{[^{}]*\}", " ", e)
    e = re.sub(r"\[[^\]]*\]", " ", e)
    e = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*"
               r"\([^)]*\)", " ", e)
    e = re.sub(r"\$\{?\w+\}?|<<[^>]*>>", " ", e)
    names = set()
    for m in re.finditer(r"(?<![\w.:])([A-Za-z_:][A-Za-z0-9_:]*)(\s*\()?", e):
        if not m.group(2) and m.group(1).lower() not in PROMQL_WORDS:
            names.add(m.group(1))
    return names


def promql_labels(expr):
    """Label names an expression uses: in matchers and in by/without/
    on/ignoring/group_* lists (adapter placeholders left out)."""
    e = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)
    e = re.sub(r"<<[^>]*>>", " ", e)
    names = set()
    for block in re.findall(r"\{([^{}]*)\}", e):
        names |= set(re.findall(r"([A-Za-z_][A-Za-z0-9_]*)\s*(?:=~|!~|!=|=)",
                                block))
    for lst in re.findall(r"\b(?:by|without|on|ignoring|group_left|"
                          r"group_right)\s*\(([^)]*)\)", e):
        names |= set(re.findall(r"[A-Za-z_][A-Za-z0-9_]*", lst))
    return names


def allowed_labels(metrics):
    """Labels series of these metrics carry: their own (from the sources),
    le on histogram buckets, and what the scrape job adds. None when a
    metric's labels could not be read."""
    cat = MON["metrics"]
    allowed = set(TARGET_LABELS)
    for n in metrics:
        base, suffix = n, ""
        for s in HISTOGRAM_SUFFIXES:
            if n.endswith(s) and cat.get(n[:-len(s)], ("",))[0] == \
                    "histogram":
                base, suffix = n[:-len(s)], s
        entry = cat.get(base)
        if entry is None:
            continue
        if entry[2] is None:
            return None
        allowed |= entry[2]
        if suffix == "_bucket":
            allowed.add("le")
    return allowed


def unknown_labels(expr, metrics=None, legend=None):
    """Labels used in expr (and {{label}} in a Grafana legend) that no
    series of its metrics (default: the expression's own) carries."""
    if MON["metrics"] is None:
        return []
    ms = promql_metrics(expr) if metrics is None else metrics
    allowed = allowed_labels(ms)
    if allowed is None:
        return []
    used = promql_labels(expr)
    if legend:
        used |= set(re.findall(r"\{\{\s*([A-Za-z_][A-Za-z0-9_]*)\s*\}\}",
                               legend))
    return sorted(used - allowed)


def unknown_metrics(expr):
    cat = MON["metrics"]
    if cat is None:
        return []
    bad = []
    for n in sorted(promql_metrics(expr)):
        if n in cat or n in PROMETHEUS_BUILTIN:
            continue
        base = next((n[:-len(s)] for s in HISTOGRAM_SUFFIXES
                     if n.endswith(s)), None)
        if base and cat.get(base, ("",))[0] == "histogram":
            continue
        bad.append(n)
    return bad


def check_exprs(where, exprs, legend=None):
    used = set()
    for e in exprs:
        if not isinstance(e, str) or not e.strip():
            P.add(f"{where}: an empty expression")
            continue
        for n in unknown_metrics(e):
            P.add(f"{where}: {n!r} is not a metric any service exports "
                  f"(in {e.strip()!r})")
        for lbl in unknown_labels(e, legend=legend):
            P.add(f"{where}: label {lbl!r} is on no series of "
                  f"{sorted(promql_metrics(e))} (in {e.strip()!r})")
        used |= promql_metrics(e)
    return used


def load_mon(path, loader):
    try:
        with open(path, encoding="utf-8") as f:
            return loader(f)
    except OSError as e:
        P.add(f"{os.path.basename(path)}: {e}")
    except (yaml.YAMLError, ValueError) as e:
        P.add(f"{os.path.basename(path)}: does not parse: {e}")
    return None


def check_scrape(doc):
    jobs = [j for j in (doc or {}).get("scrape_configs") or []
            if j.get("job_name") == "platform"]
    if len(jobs) != 1:
        P.add("no scrape job 'platform'")
        return
    j = jobs[0]
    sd = [s for s in j.get("kubernetes_sd_configs") or []
          if s.get("role") == "pod" and NAMESPACE in
          ((s.get("namespaces") or {}).get("names") or [])]
    if not sd:
        P.add(f"job platform: no pod discovery in namespace {NAMESPACE}")
    rl = j.get("relabel_configs") or []
    if not any(r.get("action") == "keep" and r.get("source_labels") == [
            "__meta_kubernetes_pod_annotation_prometheus_io_scrape"]
            for r in rl):
        P.add("job platform: does not keep pods by prometheus.io/scrape")
    if not any("__meta_kubernetes_pod_annotation_prometheus_io_port" in
               (r.get("source_labels") or []) and
               r.get("target_label") == "__address__" for r in rl):
        P.add("job platform: the address does not use prometheus.io/port")
    targets = {r.get("target_label") for r in rl}
    for lbl in ("namespace", "pod", "service"):
        if lbl not in targets:
            P.add(f"job platform: no {lbl!r} label (prometheus-adapter and "
                  "the dashboard need it)")


def check_adapter(doc):
    rules = (doc or {}).get("rules") or {}
    served = {}
    for section, need in (("custom", {"namespace", "pod"}),
                          ("external", {"namespace"})):
        served[section] = {}
        for rule in rules.get(section) or []:
            sq = rule.get("seriesQuery", "")
            check_exprs(f"prometheus-adapter {section}", [sq])
            mq = rule.get("metricsQuery", "")
            for lbl in unknown_labels(mq, metrics=promql_metrics(sq)):
                P.add(f"prometheus-adapter {section} {sq!r}: metricsQuery "
                      f"groups or matches by {lbl!r}, not a label of it")
            over = ((rule.get("resources") or {}).get("overrides") or {})
            if not need <= set(over):
                P.add(f"prometheus-adapter {section} {sq!r}: resources "
                      f"overrides lack {sorted(need - set(over))}")
            if "<<.LabelMatchers>>" not in rule.get("metricsQuery", ""):
                P.add(f"prometheus-adapter {section} {sq!r}: metricsQuery "
                      "ignores <<.LabelMatchers>> (namespace, selector)")
            series = promql_metrics(sq)
            name = (rule.get("name") or {}).get("as") or \
                (series.pop() if len(series) == 1 else None)
            if name:
                served[section][name] = series
    MON["adapter"] = served


def check_alerts(doc):
    n = 0
    for g in (doc or {}).get("groups") or []:
        for rule in g.get("rules") or []:
            n += 1
            name = rule.get("alert") or rule.get("record")
            if not name:
                P.add(f"alerts group {g.get('name')}: a rule without a name")
            if rule.get("alert") and not (rule.get("labels") or {}).get(
                    "severity"):
                P.add(f"alert {name}: no severity label")
            check_exprs(f"alert {name}", [rule.get("expr")])
    if n == 0:
        P.add("alerts.yaml: no rules")


def dashboard_exprs(panels):
    for p in panels or []:
        for t in p.get("targets") or []:
            yield p.get("title"), t.get("expr"), t.get("legendFormat")
        yield from dashboard_exprs(p.get("panels"))


def check_dashboard(d):
    if not isinstance(d, dict) or not d.get("panels"):
        P.add("grafana-dashboard.json: no panels")
        return
    ids = [p.get("id") for p in d["panels"]]
    if len(ids) != len(set(ids)):
        P.add("grafana-dashboard.json: panel ids repeat")
    used = set()
    for title, expr, legend in dashboard_exprs(d["panels"]):
        used |= check_exprs(f"dashboard panel {title!r}", [expr], legend)
    cat = MON["metrics"]
    if cat is not None:
        missing = sorted(n for n in cat if n not in used and not any(
            n + s in used for s in HISTOGRAM_SUFFIXES))
        if missing:
            # Not a failure: services gain metrics in parallel work; the
            # note says what a dashboard panel could show next.
            print("check.py: note: exported but not on the dashboard: " +
                  ", ".join(missing))


def check_monitoring(mon, src):
    P.context = "monitoring"
    if src:
        MON["metrics"] = source_metrics(src)
        if not MON["metrics"]:
            P.add(f"no metric definitions found under {src}")
    else:
        print("check.py: sources not found: metric names not checked "
              "against them")
    check_scrape(load_mon(os.path.join(mon, "prometheus-scrape.yaml"),
                          yaml.safe_load))
    check_adapter(load_mon(os.path.join(mon, "prometheus-adapter.yaml"),
                           yaml.safe_load))
    check_alerts(load_mon(os.path.join(mon, "alerts.yaml"), yaml.safe_load))
    check_dashboard(load_mon(os.path.join(mon, "grafana-dashboard.json"),
                             json.load))
    P.context = ""


def check_hpa_signal(name, h):
    """The HPA of a service in HPA_SIGNAL scales on that signal too."""
    want = HPA_SIGNAL.get(name)
    if want is None:
        return
    key = want[0].lower() + want[1:]
    ms = [m for m in h["spec"].get("metrics") or [] if m.get("type") == want]
    if not ms:
        P.add(f"{name}: HPA has no {want} metric (README.md, \"Scaling\")")
    for m in ms:
        spec = m.get(key) or {}
        metric = (spec.get("metric") or {}).get("name")
        target = spec.get("target") or {}
        if target.get("type") != "AverageValue" or \
                not target.get("averageValue"):
            P.add(f"{name}: HPA {want} metric {metric}: want an "
                  "AverageValue target")
        cat = MON["metrics"]
        if cat is not None:
            owner = cat.get(metric, (None, None))[1]
            if owner != name:
                P.add(f"{name}: HPA metric {metric!r} is not exported by "
                      f"services/{name} (" +
                      (f"it is {owner}'s)" if owner else "nobody exports it)"))
        sel = ((spec.get("metric") or {}).get("selector") or {}).get(
            "matchLabels") or {}
        if sel and cat is not None and metric in cat and \
                cat[metric][2] is not None:
            for lbl in sorted(set(sel) - cat[metric][2]):
                P.add(f"{name}: HPA metric {metric!r} selects by {lbl!r}, "
                      "which it does not have")
        section = ADAPTER_SECTION[want]
        if metric not in (MON["adapter"] or {}).get(section, {}):
            P.add(f"{name}: HPA {want} metric {metric!r} is not served by a "
                  f"{section!r} rule in prometheus-adapter.yaml")


# ---------------------------------------------------------------- main --

def main():
    ap = argparse.ArgumentParser()
    here = os.path.dirname(os.path.abspath(__file__))
    ap.add_argument("--root", default=here)
    ap.add_argument("--dockerfile",
                    default=os.path.join(here, "..", "docker", "Dockerfile"))
    ap.add_argument("--monitoring", default=None,
                    help="deploy/monitoring (default: ROOT/../monitoring)")
    ap.add_argument("--src", default=None,
                    help="the source tree, for the metric catalogue "
                    "(default: where this script lives)")
    ap.add_argument("--no-kubectl", action="store_true")
    args = ap.parse_args()
    root = os.path.abspath(args.root)
    mon = os.path.abspath(args.monitoring or
                          os.path.join(root, "..", "monitoring"))

    try:
        with open(os.path.join(root, "README.md"), encoding="utf-8") as f:
            readme = f.read()
    except OSError:
        readme = ""
        P.add("deploy/k8s/README.md missing")

    check_files(root)
    for s in SERVICES:
        if not os.path.isfile(os.path.join(root, "base", s,
                                           "kustomization.yaml")):
            P.add(f"base/{s}/kustomization.yaml missing")
    check_dockerfile(args.dockerfile)
    # Before the renders: the HPA rules need the adapter's metrics.
    check_monitoring(mon, find_sources(args.src))

    base_ctx = {"secrets_in_render": False, "readme": readme}
    check_render(static_render_base(root), "base (static)", base_ctx)
    n = len(MON["metrics"]) if MON["metrics"] is not None else None
    checked = ["files", "Dockerfile",
               f"monitoring ({n} exported metrics)" if n is not None
               else "monitoring (names unchecked)", "base (static render)"]

    kubectl = None if args.no_kubectl else shutil.which("kubectl")
    if kubectl:
        overlays_dir = os.path.join(root, "overlays")
        overlays = sorted(o for o in os.listdir(overlays_dir)
                          if os.path.isfile(os.path.join(
                              overlays_dir, o, "kustomization.yaml")))
        with tempfile.TemporaryDirectory(
                dir=os.environ.get("TEST_TMPDIR")) as tmp:
            copy = os.path.join(tmp, "k8s")
            shutil.copytree(root, copy, symlinks=False)
            for target in ["base"] + [f"overlays/{o}" for o in overlays]:
                objs = kubectl_render(copy, target)
                if objs is None:
                    continue
                ctx = {"secrets_in_render": target == "overlays/dev",
                       "readme": readme}
                r = check_render(objs, f"kustomize {target}", ctx)
                if target != "overlays/dev" and r.kind("Secret"):
                    P.add(f"kustomize {target}: renders a Secret")
                checked.append(f"kustomize {target}")
    else:
        print("check.py: " + ("--no-kubectl" if args.no_kubectl else
                              "kubectl not on PATH") +
              ": kustomize renders not checked")

    P.context = ""
    if P.items:
        for p in P.items:
            print("FAIL", p)
        print(f"check.py: {len(P.items)} problem(s)")
        return 1
    print("check.py: OK:", ", ".join(checked))
    return 0


if __name__ == "__main__":
    sys.exit(main())
