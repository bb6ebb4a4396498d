// grpc_bench - the gRPC C++ reference for tools/bench/rpc: the same echo
// measured the same way as bench_rpc (server in a forked child process,
// one channel = one HTTP/2 connection, sequential latency with one
// thread, throughput with N threads in flight, median of R rounds).
// Synchronous server and stubs: the common way gRPC C++ services are
// written, and the shape libs/rpc offers (blocking handlers on a pool).
//
//   grpc_bench [--payload B] [--seq N] [--secs S] [--rounds R] [--inflight N]
//
// Last line: RESULT grpc_p50_us=... grpc_p99_us=... grpc_rps=...
#include <grpcpp/grpcpp.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "echo.grpc.pb.h"

using Clock = std::chrono::steady_clock;

namespace {

size_t payload_len = 64;
int seq_n = 5000;
double secs = 3.0;
int rounds = 3;
int inflight = 64;

class EchoService final : public bench::v1::Bench::Service {
  grpc::Status Echo(grpc::ServerContext*, const bench::v1::EchoMsg* req,
                    bench::v1::EchoMsg* rep) override {
    rep->set_data(req->data());
    return grpc::Status::OK;
  }
};

[[noreturn]] void run_server(int port_fd, int stop_fd) {
  EchoService svc;
  grpc::ServerBuilder b;
  int port = 0;
  b.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(), &port);
  b.RegisterService(&svc);
  std::unique_ptr<grpc::Server> server = b.BuildAndStart();
  if (write(port_fd, &port, sizeof(port)) != sizeof(port)) _exit(1);
  char c;
  while (read(stop_fd, &c, 1) > 0) {
  }
  server->Shutdown();
  _exit(0);
}

bool call(bench::v1::Bench::Stub* stub, const std::string& payload) {
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
  bench::v1::EchoMsg req, rep;
  req.set_data(payload);
  grpc::Status st = stub->Echo(&ctx, req, &rep);
  return st.ok() && rep.data().size() == payload.size();
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  size_t n = v.size();
  return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

long arg(const char* s, long lo, long hi) {
  char* end = nullptr;
  long v = strtol(s, &end, 10);
  if (end == s || *end != '\0' || v < lo || v > hi) {
    fprintf(stderr, "grpc_bench: bad number %s\n", s);
    exit(2);
  }
  return v;
}

}  // namespace

int main(int argc, char** argv) {
  for (int i = 1; i + 1 < argc; i += 2) {
    std::string a = argv[i];
    if (a == "--payload") payload_len = (size_t)arg(argv[i + 1], 1, 1 << 20);
    else if (a == "--seq") seq_n = (int)arg(argv[i + 1], 10, 10000000);
    else if (a == "--secs") secs = (double)arg(argv[i + 1], 1, 600);
    else if (a == "--rounds") rounds = (int)arg(argv[i + 1], 1, 50);
    else if (a == "--inflight") inflight = (int)arg(argv[i + 1], 1, 1024);
    else if (a == "--workers" || a == "--only") continue;  // bench_rpc's
    else {
      fprintf(stderr, "usage: grpc_bench [--payload B] [--seq N] [--secs S] [--rounds R] [--inflight N]\n");
      return 2;
    }
  }
  int portp[2], stopp[2];
  if (pipe(portp) != 0 || pipe(stopp) != 0) return 1;
  pid_t pid = fork();  // before any gRPC state exists in this process
  if (pid == 0) {
    close(portp[0]);
    close(stopp[1]);
    run_server(portp[1], stopp[0]);
  }
  close(portp[1]);
  close(stopp[0]);
  int port = 0;
  if (read(portp[0], &port, sizeof(port)) != sizeof(port)) return 1;

  std::string payload(payload_len, '\0');
  for (size_t i = 0; i < payload_len; i++) payload[i] = (char)(i * 31 + 7);
  auto channel = grpc::CreateChannel("127.0.0.1:" + std::to_string(port),
                                     grpc::InsecureChannelCredentials());
  auto stub = bench::v1::Bench::NewStub(channel);
  if (!channel->WaitForConnected(std::chrono::system_clock::now() + std::chrono::seconds(10))) {
    fprintf(stderr, "grpc_bench: cannot connect\n");
    return 1;
  }

  std::vector<double> p50s, p99s, means, rpss;
  for (int r = 0; r < rounds; r++) {
    std::vector<double> lat;
    lat.reserve((size_t)seq_n);
    for (int i = -seq_n / 10; i < seq_n; i++) {
      auto t0 = Clock::now();
      if (!call(stub.get(), payload)) {
        fprintf(stderr, "grpc_bench: call failed\n");
        return 1;
      }
      auto t1 = Clock::now();
      if (i >= 0) lat.push_back(std::chrono::duration<double, std::micro>(t1 - t0).count());
    }
    std::sort(lat.begin(), lat.end());
    double sum = 0;
    for (double v : lat) sum += v;
    p50s.push_back(lat[lat.size() / 2]);
    p99s.push_back(lat[lat.size() * 99 / 100]);
    means.push_back(sum / (double)lat.size());

    std::atomic<long> calls{0}, errors{0};
    auto end = Clock::now() + std::chrono::milliseconds((long)(secs * 1000) + 100);
    auto start = Clock::now();
    std::vector<std::thread> th;
    for (int t = 0; t < inflight; t++) {
      th.emplace_back([&] {
        long ok = 0, bad = 0;
        while (Clock::now() < end) {
          if (call(stub.get(), payload)) ok++; else bad++;
        }
        calls += ok;
        errors += bad;
      });
    }
    for (auto& t : th) t.join();
    double took = std::chrono::duration<double>(Clock::now() - start).count();
    rpss.push_back((double)calls / took);
    if (errors > 0) fprintf(stderr, "grpc_bench: %ld failed calls\n", errors.load());
    fprintf(stderr, "round %d: grpc p50 %.1f us p99 %.1f us %.0f/s\n", r + 1, p50s.back(),
            p99s.back(), rpss.back());
  }
  printf("RESULT grpc_p50_us=%.1f grpc_p99_us=%.1f grpc_mean_us=%.1f grpc_rps=%.0f\n",
         median(p50s), median(p99s), median(means), median(rpss));
  close(stopp[1]);
  int st;
  waitpid(pid, &st, 0);
  return 0;
}
