"""Shared build definitions: warning flags, system link options, the
protobuf-c macro and thin wrappers so every package builds the same way.

Every C target in the tree goes through these wrappers, so a flag changes in
one place. System libraries come from Debian's -dev packages (headers in
/usr/include); they are linked by name through the LINK_* lists below.
"""

COPTS = [
    "-Wall",
    "-Wextra",
    "-Werror",
    "-Wshadow",
    "-Wstrict-prototypes",
    "-Wmissing-prototypes",
    "-Wno-unused-parameter",
    "-Wformat=2",
    "-Wno-format-nonliteral",
]

# Generated protobuf-c code is not ours to lint.
PROTO_COPTS = ["-Wno-unused-parameter"]

LINK_NNG = ["-lnng", "-lpthread"]
LINK_PROTOBUF_C = ["-lprotobuf-c"]
LINK_PQ = ["-lpq"]
LINK_HIREDIS = ["-lhiredis"]
LINK_SODIUM = ["-lsodium"]
LINK_JANSSON = ["-ljansson"]
LINK_CURL = ["-lcurl"]
LINK_SQLITE = ["-lsqlite3"]
LINK_WEBSOCKETS = ["-lwebsockets"]
LINK_CHECK = ["-lcheck", "-lsubunit", "-lm", "-lrt", "-lpthread"]

def c_library(name, copts = [], **kwargs):
    native.cc_library(name = name, copts = COPTS + copts, **kwargs)

def c_binary(name, copts = [], **kwargs):
    native.cc_binary(name = name, copts = COPTS + copts, **kwargs)

def c_test(name, copts = [], linkopts = [], size = "small", **kwargs):
    """A Check unit test. The binary must exit non-zero on any failure."""
    native.cc_test(
        name = name,
        copts = COPTS + copts,
        linkopts = linkopts + LINK_CHECK,
        size = size,
        **kwargs
    )

def proto_c_library(name, srcs, deps = [], visibility = None):
    """Compiles .proto files to C with protoc-c and wraps them in a cc_library.

    srcs: .proto files of this package, imported by workspace-relative path
    (`import "proto/rpc/v1/rpc.proto";`). deps: other proto_c_library targets
    whose .proto files these import (direct imports only).
    """
    outs_c = [s[:-len(".proto")] + ".pb-c.c" for s in srcs]
    outs_h = [s[:-len(".proto")] + ".pb-c.h" for s in srcs]
    native.filegroup(
        name = name + "_protos",
        srcs = srcs,
        visibility = visibility,
    )
    dep_protos = [d + "_protos" for d in deps]
    native.genrule(
        name = name + "_gen",
        srcs = srcs + dep_protos,
        outs = outs_c + outs_h,
        cmd = "protoc-c --proto_path=. --proto_path=/usr/include " +
              "--c_out=$(GENDIR) " +
              " ".join(["$(location %s)" % s for s in srcs]),
    )
    native.cc_library(
        name = name,
        srcs = outs_c,
        hdrs = outs_h,
        copts = PROTO_COPTS,
        linkopts = LINK_PROTOBUF_C,
        deps = deps,
        visibility = visibility,
    )

def c_integration_test(name, copts = [], linkopts = [], deps = [], **kwargs):
    """An integration test under tests/: a Check binary that starts real
    processes, PostgreSQL and Redis through //tests/harness.

    Tagged manual so `bazel test //...` (the unit tests) skips it; tools/dev
    test builds every target tagged "integration" and runs it directly,
    outside Bazel's sandbox, because it spawns servers (PostgreSQL as an
    unprivileged user) and listens on loopback ports.
    """
    native.cc_test(
        name = name,
        copts = COPTS + copts,
        linkopts = linkopts + LINK_CHECK,
        deps = deps + ["//tests/harness"],
        tags = ["manual", "integration"],
        size = "large",
        **kwargs
    )

def proto_access(name, srcs, protos, symbol, visibility = None):
    """The (rpc.v1.access) declarations of srcs as a C table.

    name: a c library exposing `<name>.h` with
    `extern const svcid_access_table <symbol>;` (libs/svcid/access.h) and
    the file `<name>.md`, the declarations as Markdown (docs/RPC-ACCESS.md
    is checked against these). protos: the proto_c_library targets whose
    .proto files srcs import (their `_protos` filegroups are used, and the
    table points at their message descriptors).
    """
    native.genrule(
        name = name + "_gen",
        srcs = srcs + [p + "_protos" for p in protos],
        outs = [name + ".c", name + ".h", name + ".md"],
        tools = ["//tools/protoaccess"],
        cmd = ("protoc-c --proto_path=. --proto_path=/usr/include " +
               "--include_imports --descriptor_set_out=$(@D)/" + name +
               ".pb " + " ".join(["$(location %s)" % s for s in srcs]) +
               " && $(location //tools/protoaccess) --symbol " + symbol +
               " --c $(location " + name + ".c) --h $(location " + name +
               ".h) --md $(location " + name + ".md) $(@D)/" + name + ".pb " +
               " ".join(["$(location %s)" % s for s in srcs])),
    )
    native.cc_library(
        name = name,
        srcs = [name + ".c"],
        hdrs = [name + ".h"],
        deps = ["//libs/svcid:access"] + protos,
        visibility = visibility,
    )
    native.filegroup(
        name = name + "_md",
        srcs = [name + ".md"],
        visibility = visibility,
    )
