#!/usr/bin/env python3
"""check_selftest.py - proves check.py catches what it claims to.

Each case copies deploy/k8s to a temporary directory, breaks one rule with
a textual edit, runs check.py on the copy and expects it to fail with a
message containing the given text. A case whose edit no longer applies
(the text it replaces is gone) fails too, so the cases follow the
manifests. The unbroken copy must pass first.

Usage: check_selftest.py [--root deploy/k8s] [--dockerfile PATH]
"""

import argparse
import os
import shutil
import subprocess
import sys
import tempfile

# (name, file relative to deploy/k8s, old text, new text, expected message).
# Cases under overlays/ need the kubectl renders; the others are caught by
# the static render of the base alone, which keeps this test quick.
CASES = [
    ("writable root filesystem", "base/auth/deployment.yaml",
     "readOnlyRootFilesystem: true", "readOnlyRootFilesystem: false",
     "readOnlyRootFilesystem is not true"),
    ("root user", "base/tenants/deployment.yaml",
     "            runAsNonRoot: true\n            runAsUser: 10001",
     "            runAsNonRoot: true\n            runAsUser: 0",
     "runAsUser unset or 0"),
    ("capabilities kept", "base/orders/deployment.yaml",
     'drop: ["ALL"]', 'drop: ["NET_RAW"]', "do not drop ALL"),
    ("no limits", "base/gateway/deployment.yaml",
     '            limits:\n              cpu: "2"\n              memory: 512Mi\n',
     "", "no limits.cpu"),
    ("admin port drift", "base/tenants/config.env",
     "ADMIN_PORT=9102", "ADMIN_PORT=9999", "container ports"),
    ("probe on the RPC port", "base/auth/deployment.yaml",
     "              path: /readyz\n              port: admin",
     "              path: /readyz\n              port: rpc",
     "readinessProbe on port rpc"),
    ("grace period too short", "base/orders/deployment.yaml",
     "terminationGracePeriodSeconds: 30", "terminationGracePeriodSeconds: 15",
     "terminationGracePeriodSeconds 15"),
    ("no preStop", "base/auth/deployment.yaml",
     'command: ["/bin/sleep", "10"]', 'command: ["/bin/true"]',
     "no preStop sleep"),
    ("service links", "base/tenants/deployment.yaml",
     "enableServiceLinks: false", "enableServiceLinks: true",
     "enableServiceLinks"),
    ("literal secret in a ConfigMap", "base/auth/config.env",
     "LOG_LEVEL=info", "LOG_LEVEL=info\nDATABASE_URL=postgresql://x:y@db/z",
     "secret DATABASE_URL"),
    ("literal secret env", "base/gateway/deployment.yaml",
     "            - name: REDIS_URL\n              valueFrom:\n"
     "                secretKeyRef:\n                  name: gateway-secrets\n"
     "                  key: REDIS_URL\n",
     "            - name: REDIS_URL\n              value: redis://:pw@r:6379\n",
     "REDIS_URL"),
    ("Secret in base", "base/kustomization.yaml",
     "  - namespace.yaml\n",
     "  - namespace.yaml\n  - leaked.yaml\n",
     "leaked.yaml does not exist"),
    ("missing resource", "base/orders/kustomization.yaml",
     "  - pdb.yaml\n", "  - pdb.yaml\n  - nothere.yaml\n",
     "nothere.yaml does not exist"),
    ("no HPA", "base/tenants/kustomization.yaml",
     "  - hpa.yaml\n", "", "0 HPAs"),
    ("no PDB", "base/gateway/kustomization.yaml",
     "  - pdb.yaml\n", "", "0 PDBs"),
    ("headless port mismatch", "base/auth/service.yaml",
     "    - name: rpc\n      port: 7101", "    - name: rpc\n      port: 7001",
     "headless Service auth port 7001 != container port 7101"),
    ("not headless", "base/tenants/service.yaml",
     "clusterIP: None", "type: ClusterIP", "no headless Service"),
    ("selector mismatch", "base/orders/deployment.yaml",
     "  selector:\n    matchLabels:\n      app.kubernetes.io/name: orders",
     "  selector:\n    matchLabels:\n      app.kubernetes.io/name: order",
     "spec.selector does not match"),
    ("caller not admitted", "base/tenants/networkpolicy.yaml",
     "values: [auth, gateway, orders, realtime]",
     "values: [gateway, orders, realtime]",
     "does not admit auth on 7202"),
    ("stranger admitted", "base/auth/networkpolicy.yaml",
     "values: [tenants, orders, gateway, realtime, notifications, sync]",
     "values: [tenants, orders, gateway, auth]",
     "admits auth on rpc"),
    ("admin open to all", "base/orders/networkpolicy.yaml",
     "    - from:\n        - namespaceSelector:\n            matchLabels:\n"
     "              kubernetes.io/metadata.name: monitoring\n",
     "    - from:\n        - namespaceSelector: {}\n",
     "port admin (9103) is open to any source"),
    ("loopback address", "base/gateway/config.env",
     "ORDERS_ADDR=dns+tcp://orders.platform.svc.cluster.local:7103",
     "ORDERS_ADDR=tcp://127.0.0.1:7103", "every address is dns+tcp"),
    ("wrong namespace in an address", "base/orders/config.env",
     "AUTH_ADDR=dns+tcp://auth.platform.svc", "AUTH_ADDR=dns+tcp://auth.default.svc",
     "namespace default"),
    ("no such port", "base/gateway/config.env",
     "TENANTS_EVENTS=dns+tcp://tenants.platform.svc.cluster.local:7202",
     "TENANTS_EVENTS=dns+tcp://tenants.platform.svc.cluster.local:7209",
     "has no port 7209"),
    ("every proxy trusted", "base/gateway/config.env",
     "GATEWAY_TRUSTED_PROXIES=\n", "GATEWAY_TRUSTED_PROXIES=0.0.0.0/0\n",
     "GATEWAY_TRUSTED_PROXIES trusts every address"),
    ("domain verification into the cluster", "base/tenants/networkpolicy.yaml",
     "              - 10.0.0.0/8\n", "",
     "egress to 10.0.0.0/8 (cluster-internal) on 80"),
    ("internet egress for the gateway", "base/gateway/networkpolicy.yaml",
     "  policyTypes:\n    - Ingress\n",
     "  policyTypes:\n    - Ingress\n    - Egress\n  egress:\n"
     "    - to:\n        - ipBlock:\n            cidr: 0.0.0.0/0\n"
     "            except: [0.0.0.0/8, 10.0.0.0/8, 100.64.0.0/10, "
     "127.0.0.0/8, 169.254.0.0/16, 172.16.0.0/12, 192.168.0.0/16]\n"
     "      ports:\n        - {protocol: TCP, port: 443}\n",
     "gateway may reach the internet on 443"),
    # Service identity.
    ("no identity mount", "base/orders/deployment.yaml",
     "            - name: identity\n              mountPath: /etc/platform/identity\n"
     "              readOnly: true\n", "",
     "orders: does not mount its Secret orders-identity"),
    ("key file path drift", "base/auth/config.env",
     "SERVICE_KEY_FILE=/etc/platform/identity/service.key",
     "SERVICE_KEY_FILE=/etc/platform/identity/auth.key",
     "auth: SERVICE_KEY_FILE='/etc/platform/identity/auth.key' is not the "
     "mounted"),
    ("no trust bundle mount", "base/tenants/deployment.yaml",
     "            - name: trust\n              mountPath: /etc/platform/trust\n"
     "              readOnly: true\n", "",
     "tenants: does not mount its ConfigMap service-trust"),
    ("trust file path drift", "base/gateway/config.env",
     "SERVICE_TRUST_FILE=/etc/platform/trust/trust",
     "SERVICE_TRUST_FILE=/etc/platform/trust.txt",
     "gateway: SERVICE_TRUST_FILE='/etc/platform/trust.txt' is not the "
     "mounted"),
    ("writable identity mount", "base/orders/deployment.yaml",
     "              mountPath: /etc/platform/identity\n              readOnly: true",
     "              mountPath: /etc/platform/identity\n              readOnly: false",
     "without readOnly"),
    ("borrowed identity", "base/gateway/deployment.yaml",
     "secretName: gateway-identity", "secretName: auth-identity",
     "gateway: refers to auth's identity Secret auth-identity"),
    ("identity key readable by the group", "base/auth/deployment.yaml",
     "defaultMode: 0400", "defaultMode: 0440", "identity key mode 0o440"),
    ("no fsGroup", "base/orders/deployment.yaml",
     "        fsGroup: 10001\n", "", "orders: no fsGroup"),
    ("operator identity generated", "overlays/dev/kustomization.yaml",
     "  - name: gateway-identity\n    envs: [dev-only-secrets/gateway-identity.env]\n",
     "  - name: gateway-identity\n    envs: [dev-only-secrets/gateway-identity.env]\n"
     "  - name: operator-identity\n    envs: [dev-only-secrets/gateway-identity.env]\n",
     "the operator identity is never deployed"),
    ("operator key in a manifest", "overlays/dev/service-trust.txt",
     "gateway f19e0833c613a0abb516b869a76610b099761ebc2ce2dc7badd71780ff811e99\n", "gateway f19e0833c613a0abb516b869a76610b099761ebc2ce2dc7badd71780ff811e99\noperator b0a2bbe54f408876fcd488367e5489d19f36a5a9bf89df6c379b967d20fd0f43\n",
     "holds the operator's secret key"),
    ("dev key not in the bundle", "overlays/dev/service-trust.txt",
     "gateway f19e0833c613a0abb516b869a76610b099761ebc2ce2dc7badd71780ff811e99\n", "gateway 0000000000000000000000000000000000000000000000000000000000000000\n",
     "gateway's key is not in the trust bundle as gateway"),
    ("service missing from the bundle", "overlays/dev/service-trust.txt",
     "gateway f19e0833c613a0abb516b869a76610b099761ebc2ce2dc7badd71780ff811e99\n", "", "trust bundle has no key for gateway"),
    ("undocumented identity Secret", "README.md",
     "`orders-identity`, ", "", "external Secret orders-identity is not "
     "documented"),
    ("token mounted", "base/auth/serviceaccount.yaml",
     "automountServiceAccountToken: false",
     "automountServiceAccountToken: true", "automounts its token"),
    ("unmarked dev secret", "overlays/dev/dev-only-secrets/orders.env",
     "# DEV ONLY - NOT A SECRET.", "# dev values.", "DEV ONLY"),
    ("secret generator in prod", "overlays/prod/kustomization.yaml",
     "\nimages:\n",
     "\nsecretGenerator:\n  - name: x\n    literals: [A=b]\n\nimages:\n",
     "secretGenerator in prod"),
    ("HPA below replicas", "overlays/prod/kustomization.yaml",
     "name: gateway\n    patch: |-\n"
     "      - {op: replace, path: /spec/minReplicas, value: 3}\n"
     "      - {op: replace, path: /spec/maxReplicas, value: 20}",
     "name: gateway\n    patch: |-\n"
     "      - {op: replace, path: /spec/minReplicas, value: 3}\n"
     "      - {op: replace, path: /spec/maxReplicas, value: 2}",
     "replicas 3 outside the HPA"),
    ("dev datastore unreachable", "overlays/dev/postgres.yaml",
     "values: [auth, tenants, orders, notifications, sync]", "values: [auth, tenants]",
     "postgres's NetworkPolicy does not admit orders"),
    ("bad dev signing key", "overlays/dev/dev-only-secrets/auth.env",
     "AUTH_SIGNING_KEYS=6d71", "AUTH_SIGNING_KEYS=zz71",
     "AUTH_SIGNING_KEYS entry"),
    ("undocumented secret", "README.md",
     "| `gateway-secrets` | `REDIS_URL` |", "",
     "external Secret gateway-secrets"),
    # Graceful termination covers realtime's WebSocket drain too.
    ("realtime drain past the grace period", "base/realtime/config.env",
     "REALTIME_DRAIN_MS=2s", "REALTIME_DRAIN_MS=15s",
     "+ REALTIME_DRAIN_MS 15.0s"),
    ("not spread over zones", "base/tenants/deployment.yaml",
     "topologyKey: topology.kubernetes.io/zone",
     "topologyKey: topology.kubernetes.io/region",
     "tenants: no topologySpreadConstraints over topology.kubernetes.io/zone"),
    ("scraped on the wrong port", "base/sync/deployment.yaml",
     'prometheus.io/port: "9104"', 'prometheus.io/port: "9999"',
     "prometheus.io annotations"),
    # HPAs on the signal that fits the service, named as it exports it.
    ("realtime HPA on CPU only", "base/realtime/hpa.yaml",
     "    - type: Pods\n      pods:\n        metric:\n"
     "          name: realtime_connections\n        target:\n"
     "          type: AverageValue\n          averageValue: \"4000\"\n", "",
     "realtime: HPA has no Pods metric"),
    ("realtime HPA on an invented metric", "base/realtime/hpa.yaml",
     "name: realtime_connections", "name: realtime_sockets",
     "'realtime_sockets' is not exported by services/realtime"),
    ("notifications HPA on another service's metric",
     "base/notifications/hpa.yaml",
     "name: notifications_queue_depth", "name: realtime_connections",
     "is not exported by services/notifications (it is realtime's)"),
    ("notifications HPA without its queue", "base/notifications/hpa.yaml",
     "    - type: External\n", "    - type: Externals\n",
     "notifications: HPA has no External metric"),
    ("adapter does not serve the HPA's metric",
     "../monitoring/prometheus-adapter.yaml",
     'as: "notifications_queue_depth"', 'as: "notifications_backlog"',
     "is not served by a 'external' rule"),
    ("adapter rule on an invented series",
     "../monitoring/prometheus-adapter.yaml",
     "seriesQuery: 'realtime_connections{",
     "seriesQuery: 'realtime_clients{",
     "'realtime_clients' is not a metric any service exports"),
    # Monitoring files: they parse and name only exported metrics.
    ("dashboard names an invented metric",
     "../monitoring/grafana-dashboard.json",
     "rate(orders_created_total[1m])", "rate(orders_placed_total[1m])",
     "'orders_placed_total' is not a metric any service exports"),
    ("dashboard JSON broken", "../monitoring/grafana-dashboard.json",
     '"schemaVersion": 39,', '"schemaVersion": 39,,', "does not parse"),
    ("histogram suffix on a counter", "../monitoring/grafana-dashboard.json",
     "rate(orders_created_total[1m])", "rate(orders_created_total_bucket[1m])",
     "'orders_created_total_bucket' is not a metric"),
    ("dashboard groups by a label the metric lacks",
     "../monitoring/grafana-dashboard.json",
     "sum by (source) (rate(tenants_resolve_total[1m]))",
     "sum by (result) (rate(tenants_resolve_total[1m]))",
     "label 'result' is on no series of ['tenants_resolve_total']"),
    ("dashboard legend names a missing label",
     "../monitoring/grafana-dashboard.json",
     '"legendFormat": "{{outcome}}"', '"legendFormat": "{{result}}"',
     "label 'result' is on no series of ['notifications_attempts_total']"),
    ("HPA selects by a missing label", "base/notifications/hpa.yaml",
     "queue: ready", "state: ready",
     "selects by 'state', which it does not have"),
    ("adapter groups by a missing label",
     "../monitoring/prometheus-adapter.yaml",
     "by (queue)'", "by (kind)'", "groups or matches by 'kind'"),
    ("alert on an invented metric", "../monitoring/alerts.yaml",
     "max by (source) (outbox_pending) > 1000",
     "max by (source) (outbox_backlog) > 1000",
     "'outbox_backlog' is not a metric any service exports"),
    ("alert without severity", "../monitoring/alerts.yaml",
     "        for: 10m\n        labels: {severity: page}\n"
     "        annotations:\n          summary: \"outbox",
     "        for: 10m\n        annotations:\n          summary: \"outbox",
     "alert OutboxBacklog: no severity label"),
    ("scrape without the pod label", "../monitoring/prometheus-scrape.yaml",
     "        target_label: pod\n", "        target_label: pod_name\n",
     "no 'pod' label"),
]
MONITORING = "../monitoring/"

DOCKER_CASES = [
    ("runtime lib missing", "libmicrohttpd12 libwebsockets17",
     "libwebsockets17", "does not install libmicrohttpd12"),
    ("runs as root", "USER 10001:10001", "USER root", "USER 10001"),
]


def run_check(check, root, dockerfile, mon, kubectl=True):
    p = subprocess.run([sys.executable, check, "--root", root,
                        "--dockerfile", dockerfile, "--monitoring", mon] +
                       ([] if kubectl else ["--no-kubectl"]),
                       capture_output=True, text=True, timeout=300)
    return p.returncode, p.stdout + p.stderr


def main():
    ap = argparse.ArgumentParser()
    here = os.path.dirname(os.path.abspath(__file__))
    ap.add_argument("--root", default=here)
    ap.add_argument("--dockerfile",
                    default=os.path.join(here, "..", "docker", "Dockerfile"))
    ap.add_argument("--monitoring",
                    default=os.path.join(here, "..", "monitoring"))
    args = ap.parse_args()
    check = os.path.join(os.path.abspath(args.root), "check.py")
    failures = skipped = 0
    with tempfile.TemporaryDirectory(dir=os.environ.get("TEST_TMPDIR")) as t:
        pristine = os.path.join(t, "pristine")
        shutil.copytree(args.root, pristine, symlinks=False)
        docker = os.path.join(t, "Dockerfile")
        shutil.copyfile(args.dockerfile, docker)
        pristine_mon = os.path.join(t, "pristine-monitoring")
        shutil.copytree(args.monitoring, pristine_mon, symlinks=False)
        rc, out = run_check(check, pristine, docker, pristine_mon)
        if rc != 0:
            print("FAIL unbroken manifests do not pass:\n" + out)
            return 1
        cases = [(n, f, o, w, e, False) for n, f, o, w, e in CASES] + \
                [(n, None, o, w, e, True) for n, o, w, e in DOCKER_CASES]
        for name, rel, old, new, expect, is_docker in cases:
            work = os.path.join(t, "case")
            shutil.rmtree(work, ignore_errors=True)
            shutil.copytree(pristine, work)
            work_mon = os.path.join(t, "case-monitoring")
            shutil.rmtree(work_mon, ignore_errors=True)
            shutil.copytree(pristine_mon, work_mon)
            dfile = os.path.join(t, "Dockerfile.case")
            shutil.copyfile(docker, dfile)
            if is_docker:
                path = dfile
            elif rel.startswith(MONITORING):
                path = os.path.join(work_mon, rel[len(MONITORING):])
            else:
                path = os.path.join(work, rel)
            with open(path, encoding="utf-8") as f:
                text = f.read()
            if text.count(old) != 1:
                print(f"FAIL {name}: the text to break occurs "
                      f"{text.count(old)} times in {rel or 'Dockerfile'}")
                failures += 1
                continue
            with open(path, "w", encoding="utf-8") as f:
                f.write(text.replace(old, new))
            if name == "Secret in base":
                with open(os.path.join(work, "base", "leaked.yaml"), "w") as f:
                    f.write("apiVersion: v1\nkind: Secret\nmetadata:\n"
                            "  name: leaked\nstringData:\n  K: v\n")
                expect = "a Secret in base"
            needs_kubectl = bool(rel) and rel.startswith("overlays/")
            if needs_kubectl and not shutil.which("kubectl"):
                print(f"skip {name}: needs kubectl")
                skipped += 1
                continue
            rc, out = run_check(check, work, dfile, work_mon, needs_kubectl)
            if rc == 0 or expect not in out:
                print(f"FAIL {name}: check.py exit {rc}, expected a problem "
                      f"containing {expect!r}; output:\n{out}")
                failures += 1
            else:
                print(f"ok   {name}")
    caught = len(CASES) + len(DOCKER_CASES) - failures - skipped
    print(f"check_selftest.py: {caught} caught, {failures} missed, "
          f"{skipped} skipped")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
