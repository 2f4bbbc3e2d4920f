// veer-bench-compile: load + validate + compile at scale (issue 3), run by `make bench`
// through tests/bench/compile_bench.sh.
//
// Generates, once, into a temporary directory, a cluster of N Services (default 10,000,
// spread over 10 namespaces) with 3 versions each: per Service P ready Pods per version
// (default 1; labels app, version; P >= 2 gives every version a Maglev ring), one EndpointSlice
// naming them, a DestinationRule with subsets v1..v3 and a VirtualService with 4 http rules mixing
// matches and weights (a header match, a URI prefix with a 50/50 split, a sourceLabels match, and
// an unconditional 80/10/10 split). Then runs the real pipeline (buildFromPaths: load, resolve,
// compile) R times (default 5), each in a fresh child process, and measures each child's wall time
// and peak RSS (wait4's ru_maxrss). Before each run, a baseline in its own child: libyaml's parser
// alone over the same files, the floor of any YAML reader. Reports medians, the goal (under 1 s and
// under 64 MiB), and the pipeline's CPU as a multiple of the baseline's, which stays put when a
// shared machine runs slower. Exits non-zero only on errors (a child that fails, diagnostics with
// errors, a plan of the wrong size), never on a missed goal.
//
// Usage: veer-bench-compile [--services N] [--runs R] [--pods-per-version P] [--keep DIR]

#include <sys/resource.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include <yaml.h>

#include "compiler/pipeline.h"
#include "config/resolve.h"

namespace fs = std::filesystem;

namespace {

constexpr int kNamespaces = 10;
const char* kVersions[] = {"v1", "v2", "v3"};

std::string ns(int i) {
  return "ns" + std::to_string(i % kNamespaces);
}
std::string svcName(int i) {
  return "svc-" + std::to_string(i);
}

/** 10.(96 + i / 65536).(i / 256 % 256).(i % 256): a distinct clusterIP per Service. */
std::string clusterIp(int i) {
  return "10." + std::to_string(96 + i / 65536) + "." + std::to_string(i / 256 % 256) + "." +
         std::to_string(i % 256);
}

std::string podIp(int i, int v, int k, int pods) {
  const int n = (i * 3 + v) * pods + k;
  return "10." + std::to_string(128 + n / 65536) + "." + std::to_string(n / 256 % 256) + "." +
         std::to_string(n % 256);
}

void generate(const fs::path& dir, int services, int podsPerVersion) {
  fs::create_directories(dir);
  std::ofstream svc(dir / "services.yaml");
  std::ofstream pods(dir / "pods.yaml");
  std::ofstream slices(dir / "endpointslices.yaml");
  std::ofstream drs(dir / "destinationrules.yaml");
  std::ofstream vss(dir / "virtualservices.yaml");
  for (int i = 0; i < services; ++i) {
    const std::string n = svcName(i);
    const std::string s = ns(i);
    svc << "---\napiVersion: v1\nkind: Service\nmetadata:\n  name: " << n << "\n  namespace: " << s
        << "\n  labels:\n    app: " << n << "\nspec:\n  clusterIP: " << clusterIp(i)
        << "\n  ports:\n  - name: http\n    port: 8080\n    protocol: TCP\n    targetPort: http\n"
        << "  selector:\n    app: " << n << "\n";
    slices << "---\napiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\nmetadata:\n  name: " << n
           << "-abcde\n  namespace: " << s << "\n  labels:\n    kubernetes.io/service-name: " << n
           << "\naddressType: IPv4\nports:\n- name: http\n  port: 8080\n  protocol: TCP\n"
           << "endpoints:\n";
    for (int pv = 0; pv < 3 * podsPerVersion; ++pv) {
      const int v = pv / podsPerVersion, k = pv % podsPerVersion;
      const std::string pod = n + "-" + kVersions[v] + "-7c9f8-" + std::to_string(k);
      pods << "---\napiVersion: v1\nkind: Pod\nmetadata:\n  name: " << pod << "\n  namespace: " << s
           << "\n  labels:\n    app: " << n << "\n    version: " << kVersions[v]
           << "\nspec:\n  containers:\n  - name: app\n    image: registry.example.com/" << n << ":"
           << kVersions[v] << "\n    ports:\n    - name: http\n      containerPort: 8080\n"
           << "      protocol: TCP\nstatus:\n  phase: Running\n  podIP: "
           << podIp(i, v, k, podsPerVersion)
           << "\n  podIPs:\n  - ip: " << podIp(i, v, k, podsPerVersion)
           << "\n  conditions:\n  - type: Ready\n    status: \"True\"\n";
      slices << "- addresses:\n  - " << podIp(i, v, k, podsPerVersion)
             << "\n  conditions:\n    ready: true\n"
             << "  targetRef:\n    kind: Pod\n    name: " << pod << "\n    namespace: " << s
             << "\n";
    }
    drs << "---\napiVersion: networking.istio.io/v1beta1\nkind: DestinationRule\nmetadata:\n  "
           "name: "
        << n << "\n  namespace: " << s << "\nspec:\n  host: " << n << "\n  subsets:\n";
    for (const char* v : kVersions) {
      drs << "  - name: " << v << "\n    labels:\n      version: " << v << "\n";
    }
    vss << "---\napiVersion: networking.istio.io/v1beta1\nkind: VirtualService\nmetadata:\n  name: "
        << n << "\n  namespace: " << s << "\nspec:\n  hosts:\n  - " << n << "\n  http:\n"
        << "  - name: testers\n    match:\n    - headers:\n        end-user:\n          exact: "
           "jason\n"
        << "    route:\n    - destination:\n        host: " << n << "\n        subset: v3\n"
        << "  - name: api\n    match:\n    - uri:\n        prefix: /api/\n      method:\n"
        << "        exact: POST\n    route:\n    - destination:\n        host: " << n
        << "\n        subset: v1\n      weight: 50\n    - destination:\n        host: " << n
        << "\n        subset: v2\n      weight: 50\n"
        << "  - name: from-canary-clients\n    match:\n    - sourceLabels:\n        track: canary\n"
        << "    route:\n    - destination:\n        host: " << n << "\n        subset: v2\n"
        << "  - name: default\n    route:\n    - destination:\n        host: " << n
        << "\n        subset: v1\n      weight: 80\n    - destination:\n        host: " << n
        << "\n        subset: v2\n      weight: 10\n    - destination:\n        host: " << n
        << "\n        subset: v3\n      weight: 10\n";
  }
}

struct Run {
  double seconds = 0;    // wall
  double cpuSeconds = 0; // user + system: steadier than wall on a shared machine
  long maxRssKiB = 0;
};

/** Runs child() in a fresh child process; its exit status is child()'s (0: ok). */
template <class F> bool runChild(F child, Run& out) {
  std::fflush(stdout);
  const auto start = std::chrono::steady_clock::now();
  pid_t pid = fork();
  if (pid < 0) {
    std::perror("fork");
    return false;
  }
  if (pid == 0) {
    _exit(child());
  }
  int status = 0;
  struct rusage ru {};
  if (wait4(pid, &status, 0, &ru) != pid) {
    std::perror("wait4");
    return false;
  }
  out.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  out.maxRssKiB = ru.ru_maxrss;
  out.cpuSeconds = static_cast<double>(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
                   static_cast<double>(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
    std::fprintf(stderr, "veer-bench-compile: child failed (status %d)\n", status);
    return false;
  }
  return true;
}

/** The pipeline. Exit status: 0 ok, 2 diagnostics with errors, 3 a plan of the wrong size. */
int pipeline(const fs::path& dir, int services) {
  veer::BuildResult r = veer::buildFromPaths({dir.string()});
  if (veer::hasErrors(r.diags)) {
    std::fprintf(stderr, "%s", veer::formatDiagnostics(r.diags).c_str());
    return 2;
  }
  if (r.plan.services.size() != static_cast<size_t>(services) ||
      r.image.services.size() != static_cast<size_t>(services)) {
    std::fprintf(stderr, "plan has %zu services, image %zu; expected %d\n", r.plan.services.size(),
                 r.image.services.size(), services);
    return 3;
  }
  return 0;
}

/**
 * The baseline: libyaml's parser alone over the same files, on one thread, every event
 * read and dropped. No YAML reader pays less than this, so pipeline CPU / scan CPU is
 * what veer adds, and the ratio holds on a day the machine runs slower.
 */
int scan(const fs::path& dir) {
  for (const auto& f : fs::directory_iterator(dir)) {
    FILE* in = std::fopen(f.path().c_str(), "rb");
    if (in == nullptr) {
      std::perror(f.path().c_str());
      return 1;
    }
    yaml_parser_t parser;
    yaml_parser_initialize(&parser);
    yaml_parser_set_input_file(&parser, in);
    bool end = false;
    while (!end) {
      yaml_event_t ev;
      if (yaml_parser_parse(&parser, &ev) == 0) {
        std::fprintf(stderr, "%s: %s\n", f.path().c_str(), parser.problem);
        return 1;
      }
      end = ev.type == YAML_STREAM_END_EVENT;
      yaml_event_delete(&ev);
    }
    yaml_parser_delete(&parser);
    std::fclose(in);
  }
  return 0;
}

double cpuSeconds() {
  struct rusage ru {};
  getrusage(RUSAGE_SELF, &ru);
  return static_cast<double>(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
         static_cast<double>(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
}

long maxRssKiB() {
  struct rusage ru {};
  getrusage(RUSAGE_SELF, &ru);
  return ru.ru_maxrss;
}

/**
 * Where the time and memory go: the pipeline's three phases (the steps of
 * buildFromPaths) in one fresh child, wall and CPU seconds and peak RSS after each.
 */
int phases(const fs::path& dir) {
  using Clock = std::chrono::steady_clock;
  const auto w0 = Clock::now();
  const double t0 = cpuSeconds();
  veer::LoadResult l = veer::loadPaths({dir.string()});
  const auto w1 = Clock::now();
  const double t1 = cpuSeconds();
  const long m1 = maxRssKiB();
  veer::ResolveResult r = veer::resolve(std::make_shared<const veer::Config>(std::move(l.config)));
  const auto w2 = Clock::now();
  const double t2 = cpuSeconds();
  const long m2 = maxRssKiB();
  veer::CompileResult c = veer::compile(r.plan);
  const auto w3 = Clock::now();
  const double t3 = cpuSeconds();
  const long m3 = maxRssKiB();
  auto wall = [](Clock::time_point a, Clock::time_point b) {
    return std::chrono::duration<double>(b - a).count();
  };
  size_t ringBytes = c.image.rings.size() * sizeof(veer_maglev_ring);
  std::printf("  phases (wall s / CPU s / peak RSS after): load %.3f / %.3f / %.1f MiB, resolve "
              "%.3f / %.3f / %.1f MiB, compile %.3f / %.3f / %.1f MiB (of which %zu Maglev "
              "rings: %.1f MiB)\n",
              wall(w0, w1), t1 - t0, static_cast<double>(m1) / 1024, wall(w1, w2), t2 - t1,
              static_cast<double>(m2) / 1024, wall(w2, w3), t3 - t2, static_cast<double>(m3) / 1024,
              c.image.rings.size(), static_cast<double>(ringBytes) / (1 << 20));
  std::fflush(stdout);
  return 0;
}

template <typename T> T median(std::vector<T> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

int usage() {
  std::fprintf(
      stderr,
      "usage: veer-bench-compile [--services N] [--runs R] [--pods-per-version P] [--keep DIR]\n");
  return 1;
}

} // namespace

int main(int argc, char** argv) {
  int services = 10000;
  int runs = 5;
  int podsPerVersion = 1;
  std::string keep;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if ((a == "--services" || a == "--runs" || a == "--pods-per-version" || a == "--keep") &&
        i + 1 < argc) {
      std::string v = argv[++i];
      if (a == "--keep") {
        keep = v;
        continue;
      }
      char* end = nullptr;
      long n = std::strtol(v.c_str(), &end, 10);
      if (*end != '\0' || n < 1 || n > 60000 || (a == "--pods-per-version" && n > 40)) {
        return usage();
      }
      (a == "--services" ? services : a == "--runs" ? runs : podsPerVersion) = static_cast<int>(n);
    } else {
      return usage();
    }
  }
  fs::path dir;
  if (keep.empty()) {
    std::string tmpl = (fs::temp_directory_path() / "veer-bench-compile.XXXXXX").string();
    if (mkdtemp(tmpl.data()) == nullptr) {
      std::perror("mkdtemp");
      return 1;
    }
    dir = tmpl;
  } else {
    dir = keep;
  }
  generate(dir, services, podsPerVersion);
  uintmax_t bytes = 0;
  for (const auto& f : fs::directory_iterator(dir)) {
    bytes += f.file_size();
  }
  std::printf("compile bench: %d services x 3 subsets x 4 rules (%d pods, %d EndpointSlices, "
              "%d DestinationRules, %d VirtualServices), %.1f MiB of YAML in %s\n",
              services, services * 3 * podsPerVersion, services, services, services,
              static_cast<double>(bytes) / (1 << 20), dir.c_str());
  bool ok = true;
  Run warm;
  // Page cache and allocator warm-up, not counted.
  ok = runChild([&] { return pipeline(dir, services); }, warm);
  std::vector<double> secs;
  std::vector<double> cpu;
  std::vector<long> rss;
  std::vector<double> scanCpu;
  std::vector<double> ratio;
  for (int r = 0; ok && r < runs; ++r) { // the baseline and the pipeline interleaved
    Run base;
    Run one;
    ok = runChild([&] { return scan(dir); }, base) &&
         runChild([&] { return pipeline(dir, services); }, one);
    if (ok) {
      std::printf("  run %d: %.3f s wall, %.3f s CPU, peak RSS %.1f MiB; libyaml scan %.3f s "
                  "CPU\n",
                  r + 1, one.seconds, one.cpuSeconds, static_cast<double>(one.maxRssKiB) / 1024,
                  base.cpuSeconds);
      secs.push_back(one.seconds);
      cpu.push_back(one.cpuSeconds);
      rss.push_back(one.maxRssKiB);
      scanCpu.push_back(base.cpuSeconds);
      ratio.push_back(one.cpuSeconds / base.cpuSeconds);
    }
  }
  Run phaseRun;
  ok = ok && runChild([&] { return phases(dir); }, phaseRun);
  if (keep.empty()) {
    std::error_code ec;
    fs::remove_all(dir, ec);
  }
  if (!ok) {
    return 1;
  }
  const double s = median(secs);
  const double mib = static_cast<double>(median(rss)) / 1024;
  const bool timeOk = s < 1.0;
  const bool memOk = mib < 64.0;
  std::printf("median of %d: %.3f s wall (goal < 1 s: %s; %.3f s CPU), peak RSS %.1f MiB (goal < "
              "64 MiB: %s)\n",
              runs, s, timeOk ? "met" : "MISSED", median(cpu), mib, memOk ? "met" : "MISSED");
  std::printf("baseline, libyaml scan of the same YAML on one thread: %.3f s CPU; the pipeline "
              "costs %.2fx its CPU (median of the runs' ratios)\n",
              median(scanCpu), median(ratio));
  return 0;
}
