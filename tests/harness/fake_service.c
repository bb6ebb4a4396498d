/*
 * fake_service.c - a stand-in for one of our services in harness_itest:
 * prints its environment ("env K=V" lines on stdout, which the harness
 * captures in its log) and answers every HTTP request on ADMIN_PORT with
 * 200, or with 503 when FAKE_NOT_READY is set, until it is killed.
 *
 * Just enough to check what harness_service_start gives a process and that
 * it waits for readiness, without PostgreSQL or a real service.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

extern char **environ;

int main(void) {
  for (char **e = environ; *e != NULL; e++) printf("env %s\n", *e);
  fflush(stdout);
  const char *port = getenv("ADMIN_PORT");
  long p = port ? strtol(port, NULL, 10) : 0;
  if (p <= 0 || p > 65535) return 2;
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  int one = 1;
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  struct sockaddr_in sa = {.sin_family = AF_INET,
                           .sin_port = htons((uint16_t)p)};
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (bind(fd, (struct sockaddr *)&sa, sizeof sa) != 0 || listen(fd, 16) != 0)
    return 3;
  const char *status = getenv("FAKE_NOT_READY") ? "503 Not Ready" : "200 OK";
  char reply[160];
  int len = snprintf(reply, sizeof reply,
                     "HTTP/1.0 %s\r\nContent-Length: 2\r\nConnection: close"
                     "\r\n\r\nok",
                     status);
  for (;;) {
    int c = accept(fd, NULL, NULL);
    if (c < 0) continue;
    char buf[2048];
    ssize_t n = recv(c, buf, sizeof buf, 0);
    (void)n;
    ssize_t w = send(c, reply, (size_t)len, MSG_NOSIGNAL);
    (void)w;
    close(c);
  }
}
