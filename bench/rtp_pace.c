// RTP load for whole-machine CPU measurements (bench/rtp.sh step 6): unlike the kit's load.c it sleeps
// between 1 ms ticks and its receiver blocks, so the CPU the machine spends is the work done. Reads
// "pa ra pb" lines; sends PPS packets/s in total (172-byte RTP) from pa to ra for SECS, round robin over
// the streams; a second thread counts arrivals at pb.
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
static int mk(int port) {
  int s = socket(AF_INET, SOCK_DGRAM, 0), b = 4 << 20;
  setsockopt(s, SOL_SOCKET, SO_RCVBUF, &b, 4);
  setsockopt(s, SOL_SOCKET, SO_SNDBUF, &b, 4);
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(port)};
  inet_pton(AF_INET, "127.0.0.1", &a.sin_addr);
  if (bind(s, (void *)&a, sizeof a)) { perror("bind"); exit(1); }
  fcntl(s, F_SETFL, O_NONBLOCK);
  return s;
}
static int ep, done;
static long recv_;
static void *rx(void *u) {
  struct epoll_event evs[256];
  char buf[2048];
  while (!__atomic_load_n(&done, __ATOMIC_RELAXED)) {
    int m = epoll_wait(ep, evs, 256, 50);
    for (int j = 0; j < m; j++) while (recv(evs[j].data.fd, buf, sizeof buf, 0) > 0) recv_++;
  }
  return u;
}
int main(int c, char **v) {
  int pps = atoi(v[1]); double secs = atof(v[2]); int n = 0;
  static int pa[4096], ra[4096], pb[4096], ss[4096];
  static struct sockaddr_in dst[4096];
  while (n < 4096 && scanf("%d %d %d", &pa[n], &ra[n], &pb[n]) == 3) n++;
  ep = epoll_create1(0);
  for (int i = 0; i < n; i++) {
    ss[i] = mk(pa[i]);
    int r = mk(pb[i]);
    dst[i] = (struct sockaddr_in){.sin_family = AF_INET, .sin_port = htons(ra[i])};
    inet_pton(AF_INET, "127.0.0.1", &dst[i].sin_addr);
    struct epoll_event e = {.events = EPOLLIN, .data.fd = r};
    epoll_ctl(ep, EPOLL_CTL_ADD, r, &e);
  }
  prctl(PR_SET_TIMERSLACK, 1);
  pthread_t t; pthread_create(&t, 0, rx, 0);
  unsigned char pkt[172] = {0x80, 0x00};
  static unsigned short seq[4096];
  long sent = 0, ticks = (long)(secs * 1000);
  struct timespec next; clock_gettime(CLOCK_MONOTONIC, &next);
  for (long k = 0, i = 0; k < ticks; k++) {
    long due = (long)((double)(k + 1) * pps / 1000);
    while (sent < due) {
      int s = i++ % n;
      pkt[2] = seq[s] >> 8; pkt[3] = seq[s] & 255; seq[s]++;
      uint32_t ssrc = htonl(s + 1); memcpy(pkt + 8, &ssrc, 4);
      if (sendto(ss[s], pkt, sizeof pkt, 0, (void *)&dst[s], sizeof dst[s]) > 0) sent++; else break;
    }
    next.tv_nsec += 1000000;
    if (next.tv_nsec >= 1000000000) { next.tv_sec++; next.tv_nsec -= 1000000000; }
    clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &next, 0);
  }
  usleep(300000);
  __atomic_store_n(&done, 1, __ATOMIC_RELAXED);
  pthread_join(t, 0);
  printf("streams=%d pps_target=%d sent=%ld received=%ld loss_pct=%.3f\n", n, pps, sent, recv_,
         100.0 * (sent - recv_) / (sent ? sent : 1));
  return 0;
}
