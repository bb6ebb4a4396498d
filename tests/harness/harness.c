/*
 * harness.c - integration-test harness: child processes, throwaway
 * PostgreSQL and Redis, and cleanup that runs however the test ends.
 *
 * Design. Every child is forked into its own process group with
 * PR_SET_PDEATHSIG, its stdout/stderr appended to <tmpdir>/<name>.log and
 * every other inherited descriptor closed (so a test's sockets never leak
 * into a server it starts). Children are tracked in one list guarded by a
 * mutex; each remembers the process that spawned it, because Check runs
 * each test in a forked child: atexit handlers and the list are inherited
 * by that child, and it must neither kill its parent's servers nor delete
 * its parent's directory when it exits. So harness_cleanup() only stops
 * children the calling process spawned and only removes the directory the
 * calling process created.
 *
 * Stopping is graceful first: each child has a stop signal (SIGTERM, or
 * SIGINT for postgres, whose SIGTERM "smart" shutdown would wait for every
 * client to disconnect), then SIGKILL to the whole process group. The
 * parent-death signal is SIGKILL except for postgres, which gets SIGINT so
 * that a crashed test still lets it shut down and release its shared memory.
 *
 * PostgreSQL refuses to run as root, so as root initdb and postgres run as
 * the "postgres" user, in a directory it owns. If that user cannot reach
 * the run's directory (e.g. $TMPDIR under /root), the cluster goes into a
 * private directory under /tmp instead, removed by cleanup all the same.
 *
 * Everything that can fail during set-up prints why to stderr: a test that
 * cannot start its infrastructure should say so plainly.
 */
#include "tests/harness/harness.h"

#include <arpa/inet.h>
#include <curl/curl.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <grp.h>
#include <postgresql/libpq-fe.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <pwd.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "libs/base/strutil.h"
#include "libs/base/uuid.h"
#include "libs/base/timeutil.h"

#define HARNESS_PATH_MAX 512
#define PG_START_TIMEOUT_MS 60000
#define STOP_TIMEOUT_MS 5000
#define MAX_EXTRA_DIRS 16

extern char **environ;

struct harness_proc {
  pid_t pid;
  pid_t owner;  /* the process that forked it (only it can waitpid) */
  int stop_sig; /* first, polite signal on stop */
  bool exited;
  bool stopping; /* cleanup in progress */
  int status;
  char name[128];
  char log_path[HARNESS_PATH_MAX];
  struct harness_proc *next;
};

/* Options of the internal spawn; harness_spawn uses the defaults. */
typedef struct spawn_opts {
  uid_t uid; /* switch to uid/gid when run_as is set */
  gid_t gid;
  bool run_as;
  const char *cwd; /* chdir before exec, or NULL */
  int death_sig;
  int stop_sig;
} spawn_opts;

static pthread_mutex_t g_mu = PTHREAD_MUTEX_INITIALIZER;
static char g_dir[HARNESS_PATH_MAX];
static pid_t g_dir_owner; /* process that created g_dir */
static bool g_atexit_done;
static harness_proc *g_procs;
static char g_extra_dirs[MAX_EXTRA_DIRS][HARNESS_PATH_MAX];
static int g_n_extra_dirs;

/* ------------------------------------------------------------- time --- */

void harness_unique(char *out, size_t cap, const char *prefix) {
  char u[UUID_STR_LEN + 1];
  uuid_v7_str(u);
  snprintf(out, cap, "%s-%.8s", prefix, u + 28); /* the random tail */
}

/* --------------------------------------------------------- init/exit --- */

static void cleanup(bool from_signal);

static void on_signal(int sig) {
  /* Not strictly async-signal-safe (cleanup frees and walks directories),
   * but the process is about to die anyway and leaving servers running is
   * the worse outcome. */
  cleanup(true);
  signal(sig, SIG_DFL);
  raise(sig);
}

static void install_handler(int sig) {
  struct sigaction old;
  if (sigaction(sig, NULL, &old) == 0 && old.sa_handler == SIG_DFL) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(sig, &sa, NULL);
  }
}

const char *harness_init(void) {
  pthread_mutex_lock(&g_mu);
  if (g_dir[0] == '\0') {
    const char *base = getenv("TMPDIR");
    if (base == NULL || base[0] == '\0') base = "/tmp";
    char tmpl[HARNESS_PATH_MAX];
    int n = snprintf(tmpl, sizeof tmpl, "%s/harness.XXXXXX", base);
    if (n < 0 || (size_t)n >= sizeof tmpl || mkdtemp(tmpl) == NULL) {
      fprintf(stderr,
              "harness: cannot create a temporary directory under %s: %s\n",
              base, strerror(errno));
      abort();
    }
    /* postgres (another user) must traverse it to reach its own subdir. */
    if (chmod(tmpl, 0755) != 0) {
      fprintf(stderr, "harness: chmod %s: %s\n", tmpl, strerror(errno));
      abort();
    }
    str_copy(g_dir, tmpl, sizeof g_dir);
    g_dir_owner = getpid();
    if (!g_atexit_done) {
      atexit(harness_cleanup);
      install_handler(SIGINT);
      install_handler(SIGTERM);
      g_atexit_done = true;
    }
  }
  pthread_mutex_unlock(&g_mu);
  return g_dir;
}

const char *harness_bin_path(const char *rel) {
  /* A small ring of buffers: a few results may be held at once. */
  static char bufs[8][HARNESS_PATH_MAX];
  static unsigned next;
  char *buf = bufs[__atomic_fetch_add(&next, 1, __ATOMIC_RELAXED) % 8];
  const char *bin = getenv("BAZEL_BIN");
  if (bin == NULL || bin[0] == '\0') bin = "bazel-bin";
  snprintf(buf, HARNESS_PATH_MAX, "%s/%s", bin, rel);
  return buf;
}

/* A port the kernel has free right now (bound to port 0, then closed). */
static int kernel_free_port(void) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return -1;
  struct sockaddr_in sa;
  memset(&sa, 0, sizeof sa);
  sa.sin_family = AF_INET;
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  sa.sin_port = 0;
  socklen_t len = sizeof sa;
  int port = -1;
  if (bind(fd, (struct sockaddr *)&sa, sizeof sa) == 0 &&
      getsockname(fd, (struct sockaddr *)&sa, &len) == 0)
    port = ntohs(sa.sin_port);
  close(fd);
  return port;
}

/* A free port is only a number until its process binds it, and the
 * kernel may offer the same number again meanwhile: a port chosen early
 * (realtime's WebSocket port, picked before auth starts) then met a
 * service's bus port chosen later (seen in CI: "ERROR on binding ... 98").
 * So a port handed out once in this process is never handed out again. */
static pthread_mutex_t ports_mu = PTHREAD_MUTEX_INITIALIZER;
static uint8_t ports_given[65536 / 8];

int harness_free_port(void) {
  pthread_mutex_lock(&ports_mu);
  int port = -1;
  for (int tries = 0; tries < 256; tries++) {
    int p = kernel_free_port();
    if (p <= 0) break;
    if ((ports_given[p / 8] & (1u << (p % 8))) == 0) {
      ports_given[p / 8] |= (uint8_t)(1u << (p % 8));
      port = p;
      break;
    }
  }
  pthread_mutex_unlock(&ports_mu);
  return port;
}

/* ------------------------------------------------------------- spawn --- */

/* Builds environ + extra ("K=V", later wins). Returns a malloc'd array of
 * borrowed strings (free only the array), or NULL. */
static char **merge_env(char *const extra[]) {
  size_t n_env = 0, n_extra = 0;
  while (environ != NULL && environ[n_env] != NULL) n_env++;
  while (extra != NULL && extra[n_extra] != NULL) n_extra++;
  char **out = calloc(n_env + n_extra + 1, sizeof *out);
  if (out == NULL) return NULL;
  size_t k = 0;
  for (size_t i = 0; i < n_env; i++) {
    const char *eq = strchr(environ[i], '=');
    size_t klen = eq ? (size_t)(eq - environ[i]) : strlen(environ[i]);
    bool overridden = false;
    for (size_t j = 0; j < n_extra && !overridden; j++)
      if (strncmp(extra[j], environ[i], klen) == 0 && extra[j][klen] == '=')
        overridden = true;
    if (!overridden) out[k++] = environ[i];
  }
  for (size_t j = 0; j < n_extra; j++) out[k++] = extra[j];
  out[k] = NULL;
  return out;
}

/* In the child after fork: only async-signal-safe calls from here on. */
static void child_exec(char *const argv[], char **envp, int logfd, int nullfd,
                       pid_t parent, const spawn_opts *o) {
  setpgid(0, 0);
  if (dup2(nullfd, 0) < 0 || dup2(logfd, 1) < 0 || dup2(logfd, 2) < 0)
    _exit(126);
  close_range(3, ~0U, 0);
  sigset_t all;
  sigemptyset(&all);
  sigprocmask(SIG_SETMASK, &all, NULL);
  signal(SIGPIPE, SIG_DFL);
  if (o->cwd != NULL && chdir(o->cwd) != 0) _exit(126);
  if (o->run_as) {
    if (setgroups(0, NULL) != 0 || setgid(o->gid) != 0 || setuid(o->uid) != 0) {
      static const char msg[] = "harness: cannot switch user\n";
      ssize_t w = write(2, msg, sizeof msg - 1);
      (void)w;
      _exit(126);
    }
  }
  /* After setuid: changing credentials clears the parent-death signal. */
  prctl(PR_SET_PDEATHSIG, o->death_sig);
  if (getppid() != parent) _exit(126); /* parent died before prctl */
  execve(argv[0], argv, envp);
  static const char msg[] = "harness: exec failed: ";
  ssize_t w = write(2, msg, sizeof msg - 1);
  w = write(2, argv[0], strlen(argv[0]));
  w = write(2, "\n", 1);
  (void)w;
  _exit(127);
}

static harness_proc *spawn_ex(const char *name, char *const argv[],
                              char *const env[], const spawn_opts *o) {
  const char *dir = harness_init();
  harness_proc *p = calloc(1, sizeof *p);
  char **envp = merge_env(env);
  int logfd = -1, nullfd = -1;
  if (p == NULL || envp == NULL) goto err;
  str_copy(p->name, name, sizeof p->name);
  int n = snprintf(p->log_path, sizeof p->log_path, "%s/%s.log", dir, name);
  if (n < 0 || (size_t)n >= sizeof p->log_path) goto err;
  logfd = open(p->log_path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  nullfd = open("/dev/null", O_RDONLY | O_CLOEXEC);
  if (logfd < 0 || nullfd < 0) {
    fprintf(stderr, "harness: open %s: %s\n", p->log_path, strerror(errno));
    goto err;
  }
  p->stop_sig = o->stop_sig;
  p->owner = getpid();
  pid_t pid = fork();
  if (pid < 0) {
    fprintf(stderr, "harness: fork: %s\n", strerror(errno));
    goto err;
  }
  if (pid == 0) child_exec(argv, envp, logfd, nullfd, p->owner, o);
  setpgid(pid, pid); /* also in the child: whichever runs first wins */
  p->pid = pid;
  close(logfd);
  close(nullfd);
  free(envp);
  pthread_mutex_lock(&g_mu);
  p->next = g_procs;
  g_procs = p;
  pthread_mutex_unlock(&g_mu);
  return p;
err:
  if (logfd >= 0) close(logfd);
  if (nullfd >= 0) close(nullfd);
  free(envp);
  free(p);
  return NULL;
}

harness_proc *harness_spawn(const char *name, char *const argv[],
                            char *const env[]) {
  spawn_opts o = {.death_sig = SIGKILL, .stop_sig = SIGTERM};
  return spawn_ex(name, argv, env, &o);
}

pid_t harness_pid(const harness_proc *p) { return p->pid; }

long harness_rss_kb(const harness_proc *p) {
  char path[64], line[256];
  snprintf(path, sizeof path, "/proc/%d/status", (int)p->pid);
  FILE *f = fopen(path, "r");
  if (f == NULL) return -1;
  long kb = -1;
  while (fgets(line, sizeof line, f) != NULL)
    if (strncmp(line, "VmRSS:", 6) == 0) kb = strtol(line + 6, NULL, 10);
  fclose(f);
  return kb;
}

const char *harness_log_path(const harness_proc *p) { return p->log_path; }

/* Reaps p if it has exited; true when it has. Processes spawned by another
 * process (Check's forked test children see their parent's list) cannot be
 * reaped here, so for those "gone" means kill(pid, 0) fails. */
static bool reap(harness_proc *p) {
  if (p->exited) return true;
  int status = 0;
  pid_t r = waitpid(p->pid, &status, WNOHANG);
  if (r == p->pid) {
    p->exited = true;
    p->status = status;
  } else if (r < 0 && errno == ECHILD) {
    if (kill(p->pid, 0) != 0 && errno == ESRCH) {
      p->exited = true;
      p->status = 0;
    }
  }
  return p->exited;
}

bool harness_alive(harness_proc *p) { return !reap(p); }

void harness_signal(harness_proc *p, int sig) {
  if (!reap(p)) kill(p->pid, sig);
}

int harness_wait_exit(harness_proc *p, int timeout_ms) {
  int64_t deadline = time_mono_ms() + timeout_ms;
  for (;;) {
    if (reap(p)) return p->status;
    if (time_mono_ms() >= deadline) return -1;
    time_sleep_ms(10);
  }
}

int harness_run(const char *name, char *const argv[], char *const env[],
                int timeout_ms) {
  harness_proc *p = harness_spawn(name, argv, env);
  if (p == NULL) return -1;
  int st = harness_wait_exit(p, timeout_ms);
  if (st == -1) harness_stop(p, 1000);
  return st != -1 && WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

bool harness_npm_ci(const char *dir, const char *probe) {
  char path[512], cmd[600];
  snprintf(path, sizeof path, "%s/node_modules/%s/package.json", dir, probe);
  struct stat sb;
  if (stat(path, &sb) == 0) return true;
  snprintf(cmd, sizeof cmd, "cd '%s' && npm ci --no-audit --no-fund", dir);
  char *argv[] = {"/bin/sh", "-c", cmd, NULL};
  return harness_run("npm", argv, NULL, 300000) == 0;
}

/* After the polite signal: SIGKILL the group if the leader is still there
 * and reap it. Grandchildren (postgres backends) can outlive a killed
 * leader, so the group is killed once more; only for a process that was
 * alive when the stop began, so a long-reaped pid (possibly reused by now)
 * is never signalled. */
static void finish(harness_proc *p) {
  if (!reap(p)) {
    kill(-p->pid, SIGKILL);
    kill(p->pid, SIGKILL);
    if (p->owner == getpid()) {
      int status = 0;
      while (waitpid(p->pid, &status, 0) < 0 && errno == EINTR) {
      }
      p->exited = true;
      p->status = status;
    } else {
      (void)harness_wait_exit(p, STOP_TIMEOUT_MS);
    }
  }
  kill(-p->pid, SIGKILL);
}

void harness_stop(harness_proc *p, int timeout_ms) {
  if (p == NULL) return;
  if (!reap(p)) {
    kill(p->pid, p->stop_sig);
    (void)harness_wait_exit(p, timeout_ms);
    finish(p);
  }
  pthread_mutex_lock(&g_mu);
  for (harness_proc **pp = &g_procs; *pp != NULL; pp = &(*pp)->next) {
    if (*pp == p) {
      *pp = p->next;
      break;
    }
  }
  pthread_mutex_unlock(&g_mu);
  free(p);
}

/* ------------------------------------------------------------- waits --- */

static bool tcp_connect(int port, int timeout_ms, int *out_fd) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (fd < 0) return false;
  struct sockaddr_in sa;
  memset(&sa, 0, sizeof sa);
  sa.sin_family = AF_INET;
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  sa.sin_port = htons((uint16_t)port);
  bool ok = false;
  if (connect(fd, (struct sockaddr *)&sa, sizeof sa) == 0) {
    ok = true;
  } else if (errno == EINPROGRESS) {
    struct pollfd pfd = {.fd = fd, .events = POLLOUT};
    if (poll(&pfd, 1, timeout_ms) == 1) {
      int err = 0;
      socklen_t len = sizeof err;
      ok = getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) == 0 && err == 0;
    }
  }
  if (ok && out_fd != NULL) {
    *out_fd = fd;
  } else {
    close(fd);
  }
  return ok;
}

bool harness_wait_port(int port, int timeout_ms) {
  int64_t deadline = time_mono_ms() + timeout_ms;
  for (;;) {
    if (tcp_connect(port, 500, NULL)) return true;
    if (time_mono_ms() >= deadline) return false;
    time_sleep_ms(20);
  }
}

static void curl_init_once(void) { curl_global_init(CURL_GLOBAL_DEFAULT); }

static size_t discard_body(char *ptr, size_t size, size_t nmemb, void *ud) {
  (void)ptr;
  (void)ud;
  return size * nmemb;
}

bool harness_wait_http_ok(const char *url, int timeout_ms) {
  static pthread_once_t once = PTHREAD_ONCE_INIT;
  pthread_once(&once, curl_init_once);
  int64_t deadline = time_mono_ms() + timeout_ms;
  bool ok = false;
  while (!ok) {
    CURL *c = curl_easy_init();
    if (c == NULL) return false;
    long left = (long)(deadline - time_mono_ms());
    if (left < 100) left = 100;
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, left < 2000 ? left : 2000L);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, discard_body);
    long code = 0;
    if (curl_easy_perform(c) == CURLE_OK &&
        curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &code) == CURLE_OK &&
        code == 200)
      ok = true;
    curl_easy_cleanup(c);
    if (ok || time_mono_ms() >= deadline) break;
    time_sleep_ms(50);
  }
  return ok;
}

/* -------------------------------------------------------------- logs --- */

static void dump_tail(const char *path, const char *name) {
  enum { TAIL = 6000 };
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return;
  struct stat st;
  if (fstat(fd, &st) != 0) {
    close(fd);
    return;
  }
  off_t start = st.st_size > TAIL ? st.st_size - TAIL : 0;
  char buf[TAIL + 1];
  ssize_t n = pread(fd, buf, TAIL, start);
  close(fd);
  if (n < 0) n = 0;
  buf[n] = '\0';
  const char *text = buf;
  if (start > 0) { /* skip the partial first line */
    const char *nl = memchr(buf, '\n', (size_t)n);
    if (nl != NULL) text = nl + 1;
  }
  fprintf(stderr, "----- %s (last lines of %s) -----\n%s%s", name, path, text,
          (n > 0 && buf[n - 1] != '\n') ? "\n" : "");
}

void harness_dump_logs(void) {
  if (g_dir[0] == '\0') return;
  DIR *d = opendir(g_dir);
  if (d == NULL) return;
  struct dirent *e;
  while ((e = readdir(d)) != NULL) {
    size_t len = strlen(e->d_name);
    if (len < 5 || strcmp(e->d_name + len - 4, ".log") != 0) continue;
    char path[HARNESS_PATH_MAX * 2];
    snprintf(path, sizeof path, "%s/%s", g_dir, e->d_name);
    dump_tail(path, e->d_name);
  }
  closedir(d);
  fflush(stderr);
}

/* ---------------------------------------------------------- postgres --- */

static int pg_bindir(char *out, size_t cap) {
  const char *env = getenv("PG_BIN");
  if (env != NULL && env[0] != '\0') {
    str_copy(out, env, cap);
    return 0;
  }
  FILE *f = popen("pg_config --bindir 2>/dev/null", "r");
  if (f != NULL) {
    char line[HARNESS_PATH_MAX] = "";
    bool got = fgets(line, sizeof line, f) != NULL;
    pclose(f);
    line[strcspn(line, "\r\n")] = '\0';
    char probe[HARNESS_PATH_MAX + 16];
    snprintf(probe, sizeof probe, "%s/initdb", line);
    /* pg_config from libpq-dev may point at /usr/bin, which has no initdb. */
    if (got && line[0] != '\0' && access(probe, X_OK) == 0) {
      str_copy(out, line, cap);
      return 0;
    }
  }
  /* Highest installed version wins. */
  int best = -1;
  DIR *d = opendir("/usr/lib/postgresql");
  if (d != NULL) {
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
      char *end = NULL;
      long v = strtol(e->d_name, &end, 10);
      if (end == e->d_name || *end != '\0' || v <= best || v > 1000) continue;
      char probe[HARNESS_PATH_MAX];
      snprintf(probe, sizeof probe, "/usr/lib/postgresql/%ld/bin/initdb", v);
      if (access(probe, X_OK) == 0) best = (int)v;
    }
    closedir(d);
  }
  if (best < 0) {
    fprintf(stderr,
            "harness: PostgreSQL server binaries not found (set PG_BIN)\n");
    return -1;
  }
  snprintf(out, cap, "/usr/lib/postgresql/%d/bin", best);
  return 0;
}

/* Fills o with "run as postgres" when we are root. */
static int pg_user(spawn_opts *o) {
  if (geteuid() != 0) return 0;
  struct passwd *pw = getpwnam("postgres");
  if (pw == NULL) {
    fprintf(stderr,
            "harness: running as root but there is no 'postgres' user\n");
    return -1;
  }
  o->run_as = true;
  o->uid = pw->pw_uid;
  o->gid = pw->pw_gid;
  return 0;
}

/* True when uid/gid can write into dir (checked in a child that becomes
 * that user: access(2) as root would always say yes). */
static bool user_can_write(const char *dir, uid_t uid, gid_t gid) {
  pid_t pid = fork();
  if (pid < 0) return false;
  if (pid == 0) {
    if (setgroups(0, NULL) != 0 || setgid(gid) != 0 || setuid(uid) != 0)
      _exit(1);
    _exit(access(dir, W_OK | X_OK) == 0 ? 0 : 1);
  }
  int status = 0;
  while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  return WIFEXITED(status) && WEXITSTATUS(status) == 0;
}

/* Creates the cluster's directory, owned by the server's user. */
static int pg_make_dir(harness_pg *pg, const spawn_opts *o) {
  const char *base = harness_init();
  int n = snprintf(pg->dir, sizeof pg->dir, "%s/pg-%d", base, pg->port);
  if (n < 0 || (size_t)n >= sizeof pg->dir) return -1;
  if (mkdir(pg->dir, 0700) != 0) {
    fprintf(stderr, "harness: mkdir %s: %s\n", pg->dir, strerror(errno));
    return -1;
  }
  if (!o->run_as) return 0;
  if (chown(pg->dir, o->uid, o->gid) != 0) return -1;
  if (user_can_write(pg->dir, o->uid, o->gid)) return 0;
  /* The postgres user cannot reach our directory: use one under /tmp. */
  rmdir(pg->dir);
  char tmpl[HARNESS_PATH_MAX];
  snprintf(tmpl, sizeof tmpl, "/tmp/harness-pg.XXXXXX");
  if (mkdtemp(tmpl) == NULL || chown(tmpl, o->uid, o->gid) != 0) {
    fprintf(stderr, "harness: no directory usable by postgres\n");
    return -1;
  }
  str_copy(pg->dir, tmpl, sizeof pg->dir);
  pthread_mutex_lock(&g_mu);
  if (g_n_extra_dirs < MAX_EXTRA_DIRS)
    str_copy(g_extra_dirs[g_n_extra_dirs++], tmpl, HARNESS_PATH_MAX);
  pthread_mutex_unlock(&g_mu);
  return 0;
}

static int pg_initdb(const harness_pg *pg, const char *bindir,
                     const spawn_opts *base) {
  char exe[HARNESS_PATH_MAX + 16], data[HARNESS_PATH_MAX + 16], name[64];
  snprintf(exe, sizeof exe, "%s/initdb", bindir);
  snprintf(data, sizeof data, "%s/data", pg->dir);
  snprintf(name, sizeof name, "pg-%d-initdb", pg->port);
  char *argv[] = {exe,        "-D",        data, "-A",   "trust",      "-U",
                  "postgres", "--no-sync", "-E", "UTF8", "--locale=C", NULL};
  spawn_opts o = *base;
  o.cwd = pg->dir;
  o.death_sig = SIGKILL;
  o.stop_sig = SIGTERM;
  harness_proc *p = spawn_ex(name, argv, NULL, &o);
  if (p == NULL) return -1;
  int status = harness_wait_exit(p, PG_START_TIMEOUT_MS);
  bool ok = status != -1 && WIFEXITED(status) && WEXITSTATUS(status) == 0;
  if (!ok) {
    fprintf(stderr, "harness: initdb failed (status %d)\n", status);
    dump_tail(harness_log_path(p), name);
  }
  harness_stop(p, STOP_TIMEOUT_MS);
  return ok ? 0 : -1;
}

/* Starts postgres on the existing cluster in pg->dir and waits until it
 * accepts connections. */
static int pg_run(harness_pg *pg, const char *bindir, const spawn_opts *base) {
  char exe[HARNESS_PATH_MAX + 16], data[HARNESS_PATH_MAX + 16], name[64],
      port[16];
  snprintf(exe, sizeof exe, "%s/postgres", bindir);
  snprintf(data, sizeof data, "%s/data", pg->dir);
  snprintf(name, sizeof name, "pg-%d", pg->port);
  snprintf(port, sizeof port, "%d", pg->port);
  char *argv[] = {exe,
                  "-D",
                  data,
                  "-p",
                  port,
                  "-k",
                  pg->dir,
                  "-h",
                  "127.0.0.1",
                  "-c",
                  "fsync=off",
                  "-c",
                  "synchronous_commit=off",
                  "-c",
                  "full_page_writes=off",
                  "-c",
                  "shared_buffers=32MB",
                  NULL};
  spawn_opts o = *base;
  o.cwd = pg->dir;
  o.death_sig = SIGINT;
  o.stop_sig = SIGINT;
  pg->proc = spawn_ex(name, argv, NULL, &o);
  if (pg->proc == NULL) return -1;
  char ping[256];
  snprintf(
      ping, sizeof ping,
      "host=127.0.0.1 port=%d dbname=postgres user=postgres connect_timeout=5",
      pg->port);
  int64_t deadline = time_mono_ms() + PG_START_TIMEOUT_MS;
  for (;;) {
    if (PQping(ping) == PQPING_OK) return 0;
    if (!harness_alive(pg->proc) || time_mono_ms() >= deadline) break;
    time_sleep_ms(50);
  }
  fprintf(stderr, "harness: postgres on port %d did not start\n", pg->port);
  dump_tail(harness_log_path(pg->proc), name);
  harness_stop(pg->proc, STOP_TIMEOUT_MS);
  pg->proc = NULL;
  return -1;
}

int harness_pg_start(harness_pg *pg) {
  memset(pg, 0, sizeof *pg);
  char bindir[HARNESS_PATH_MAX];
  spawn_opts o = {0};
  if (pg_bindir(bindir, sizeof bindir) != 0 || pg_user(&o) != 0) return -1;
  pg->port = harness_free_port();
  if (pg->port < 0 || pg_make_dir(pg, &o) != 0) return -1;
  if (pg_initdb(pg, bindir, &o) != 0 || pg_run(pg, bindir, &o) != 0) return -1;

  char admin[256];
  snprintf(
      admin, sizeof admin,
      "host=127.0.0.1 port=%d dbname=postgres user=postgres connect_timeout=5",
      pg->port);
  PGconn *c = PQconnectdb(admin);
  int rc = -1;
  if (PQstatus(c) == CONNECTION_OK) {
    PGresult *r = PQexec(c, "CREATE DATABASE test");
    if (PQresultStatus(r) == PGRES_COMMAND_OK)
      rc = 0;
    else
      fprintf(stderr, "harness: CREATE DATABASE test: %s", PQerrorMessage(c));
    PQclear(r);
  } else {
    fprintf(stderr, "harness: connect: %s", PQerrorMessage(c));
  }
  PQfinish(c);
  snprintf(pg->url, sizeof pg->url,
           "host=127.0.0.1 port=%d dbname=test user=postgres connect_timeout=5",
           pg->port);
  if (rc != 0) {
    harness_stop(pg->proc, STOP_TIMEOUT_MS);
    pg->proc = NULL;
  }
  return rc;
}

void harness_pg_stop(harness_pg *pg) {
  if (pg == NULL) return;
  harness_stop(pg->proc, STOP_TIMEOUT_MS * 4);
  pg->proc = NULL;
}

int harness_pg_restart(harness_pg *pg) {
  harness_pg_stop(pg);
  char bindir[HARNESS_PATH_MAX];
  spawn_opts o = {0};
  if (pg_bindir(bindir, sizeof bindir) != 0 || pg_user(&o) != 0) return -1;
  return pg_run(pg, bindir, &o);
}

long long harness_pg_count(const harness_pg *pg, const char *sql,
                           const char *arg) {
  PGconn *c = PQconnectdb(pg->url);
  long long v = -1;
  if (PQstatus(c) != CONNECTION_OK) {
    fprintf(stderr, "harness: connect: %s", PQerrorMessage(c));
    PQfinish(c);
    return -1;
  }
  const char *params[] = {arg};
  PGresult *r =
      PQexecParams(c, sql, arg != NULL ? 1 : 0, NULL, params, NULL, NULL, 0);
  if (PQresultStatus(r) != PGRES_TUPLES_OK || PQntuples(r) < 1 ||
      PQgetisnull(r, 0, 0)) {
    fprintf(stderr, "harness: %s: %s%s\n", sql, PQresultErrorMessage(r),
            PQresultStatus(r) == PGRES_TUPLES_OK ? "no value" : "");
  } else {
    char *end = NULL;
    errno = 0;
    v = strtoll(PQgetvalue(r, 0, 0), &end, 10);
    if (errno != 0 || end == PQgetvalue(r, 0, 0) || *end != '\0') {
      fprintf(stderr, "harness: %s: not an integer: %s\n", sql,
              PQgetvalue(r, 0, 0));
      v = -1;
    }
  }
  PQclear(r);
  PQfinish(c);
  return v;
}

/* ------------------------------------------------------------- redis --- */

/* True when a PING on the port answers +PONG. */
static bool redis_ping(int port) {
  int fd = -1;
  if (!tcp_connect(port, 500, &fd)) return false;
  bool ok = false;
  static const char cmd[] = "PING\r\n";
  if (send(fd, cmd, sizeof cmd - 1, MSG_NOSIGNAL) ==
      (ssize_t)(sizeof cmd - 1)) {
    struct pollfd pfd = {.fd = fd, .events = POLLIN};
    char buf[64];
    if (poll(&pfd, 1, 1000) == 1) {
      ssize_t n = recv(fd, buf, sizeof buf - 1, 0);
      ok = n >= 5 && memcmp(buf, "+PONG", 5) == 0;
    }
  }
  close(fd);
  return ok;
}

static const char *redis_server_path(void) {
  const char *env = getenv("REDIS_SERVER");
  if (env != NULL && env[0] != '\0') return env;
  if (access("/usr/bin/redis-server", X_OK) == 0)
    return "/usr/bin/redis-server";
  return "/usr/local/bin/redis-server";
}

static int redis_run(harness_redis *r) {
  char exe[HARNESS_PATH_MAX], port[16], name[64], dir[HARNESS_PATH_MAX];
  str_copy(exe, redis_server_path(), sizeof exe);
  snprintf(port, sizeof port, "%d", r->port);
  snprintf(name, sizeof name, "redis-%d", r->port);
  snprintf(dir, sizeof dir, "%s/redis-%d", harness_init(), r->port);
  if (mkdir(dir, 0700) != 0 && errno != EEXIST) return -1;
  char *argv[] = {exe,         "--port",      port, "--bind",
                  "127.0.0.1", "--save",      "",   "--appendonly",
                  "no",        "--daemonize", "no", "--dir",
                  dir,         NULL};
  r->proc = harness_spawn(name, argv, NULL);
  if (r->proc == NULL) return -1;
  int64_t deadline = time_mono_ms() + 20000;
  for (;;) {
    if (redis_ping(r->port)) return 0;
    if (!harness_alive(r->proc) || time_mono_ms() >= deadline) break;
    time_sleep_ms(20);
  }
  fprintf(stderr, "harness: redis on port %d did not start\n", r->port);
  dump_tail(harness_log_path(r->proc), name);
  harness_stop(r->proc, STOP_TIMEOUT_MS);
  r->proc = NULL;
  return -1;
}

int harness_redis_start(harness_redis *r) {
  memset(r, 0, sizeof *r);
  r->port = harness_free_port();
  if (r->port < 0) return -1;
  snprintf(r->url, sizeof r->url, "redis://127.0.0.1:%d", r->port);
  return redis_run(r);
}

void harness_redis_stop(harness_redis *r) {
  if (r == NULL) return;
  harness_stop(r->proc, STOP_TIMEOUT_MS);
  r->proc = NULL;
}

int harness_redis_restart(harness_redis *r) {
  harness_redis_stop(r);
  return redis_run(r);
}

/* ----------------------------------------------------------- cleanup --- */

static int rm_entry(const char *path, const struct stat *sb, int flag,
                    struct FTW *ftw) {
  (void)sb;
  (void)flag;
  (void)ftw;
  remove(path);
  return 0;
}

static void rm_tree(const char *dir) {
  nftw(dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

static void cleanup(bool from_signal) {
  pid_t me = getpid();
  /* A signal may arrive while this thread holds the lock: never deadlock,
   * go on without it (the process is about to die). */
  bool locked = from_signal ? pthread_mutex_trylock(&g_mu) == 0
                            : pthread_mutex_lock(&g_mu) == 0;
  /* Polite signal to everything first, so servers shut down in parallel. */
  for (harness_proc *p = g_procs; p != NULL; p = p->next) {
    p->stopping = p->owner == me && !reap(p);
    if (p->stopping) kill(p->pid, p->stop_sig);
  }
  int64_t deadline = time_mono_ms() + STOP_TIMEOUT_MS;
  for (harness_proc *p = g_procs; p != NULL; p = p->next) {
    if (!p->stopping) continue;
    while (!reap(p) && time_mono_ms() < deadline) time_sleep_ms(10);
    finish(p);
    p->stopping = false;
  }
  const char *keep = getenv("HARNESS_KEEP");
  if (g_dir[0] != '\0' && g_dir_owner == me) {
    if (keep != NULL && strcmp(keep, "1") == 0) {
      fprintf(stderr, "harness: HARNESS_KEEP=1, leaving %s\n", g_dir);
    } else {
      rm_tree(g_dir);
      for (int i = 0; i < g_n_extra_dirs; i++) rm_tree(g_extra_dirs[i]);
    }
    g_n_extra_dirs = 0;
    g_dir[0] = '\0';
  }
  /* Entries stay in the list (marked exited) so that pointers a test still
   * holds remain valid; harness_stop on them just frees them. */
  if (locked) pthread_mutex_unlock(&g_mu);
}

void harness_cleanup(void) { cleanup(false); }
