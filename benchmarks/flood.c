/* A count-bounded minimal raw sender and counter: the machine's physical reference.
 *
 *   flood COUNT DATA_BYTES PROTOCOL TOKEN
 *
 * Sends COUNT packets of IP protocol PROTOCOL to 127.0.0.1 on a raw socket (the kernel
 * builds the IP header), each carrying "HDPflood", the 32-bit TOKEN and a sequence
 * number, while a raw listener of the same protocol counts the ones that come back with
 * TOKEN (read between sends, then until 200 ms pass without one). Prints one JSON line:
 * sent, send errors, received, the listener's kernel drops (SO_RXQ_OVFL) and the time
 * taken. Loopback only, bounded in count: it refuses more than 10,000,000 packets.
 * benchmarks/throughput.py compiles it with `cc -O2` at run time.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define MAX_COUNT 10000000L
#define MAGIC "HDPflood"

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec / 1e9;
}

static long received, drops;
static uint32_t token;

/* Read what the listener holds; -1 when the read would block. */
static int drain(int fd) {
    unsigned char buf[2048];
    char control[CMSG_SPACE(sizeof(uint32_t))];
    int got = 0;
    for (;;) {
        struct iovec iov = {buf, sizeof buf};
        struct msghdr msg = {0};
        msg.msg_iov = &iov;
        msg.msg_iovlen = 1;
        msg.msg_control = control;
        msg.msg_controllen = sizeof control;
        ssize_t n = recvmsg(fd, &msg, MSG_DONTWAIT);
        if (n < 0)
            return got;
        for (struct cmsghdr *c = CMSG_FIRSTHDR(&msg); c; c = CMSG_NXTHDR(&msg, c))
            if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SO_RXQ_OVFL)
                memcpy(&drops, CMSG_DATA(c), sizeof(uint32_t)), drops &= 0xffffffffL;
        size_t ihl = n > 0 ? (size_t)(buf[0] & 0x0f) * 4 : 0;
        uint32_t seen;
        if ((size_t)n >= ihl + 12 && memcmp(buf + ihl, MAGIC, 8) == 0) {
            memcpy(&seen, buf + ihl + 8, 4);
            if (seen == token) {
                received++;
                got++;
            }
        }
    }
}

int main(int argc, char **argv) {
    if (argc != 5) {
        fprintf(stderr, "usage: flood COUNT DATA_BYTES PROTOCOL TOKEN\n");
        return 2;
    }
    long count = atol(argv[1]);
    long size = atol(argv[2]);
    int protocol = atoi(argv[3]);
    token = (uint32_t)strtoul(argv[4], NULL, 0);
    if (count < 1 || count > MAX_COUNT || size < 16 || size > 1400 || protocol < 1 ||
        protocol > 255) {
        fprintf(stderr, "flood: COUNT 1..%ld, DATA_BYTES 16..1400, PROTOCOL 1..255\n",
                MAX_COUNT);
        return 2;
    }
    int out = socket(AF_INET, SOCK_RAW, protocol);
    int in = socket(AF_INET, SOCK_RAW, protocol);
    if (out < 0 || in < 0) {
        fprintf(stderr, "flood: raw socket: %s (run as root)\n", strerror(errno));
        return 1;
    }
    int one = 1, big = 8 << 20;
    setsockopt(in, SOL_SOCKET, SO_RXQ_OVFL, &one, sizeof one);
    setsockopt(in, SOL_SOCKET, SO_RCVBUFFORCE, &big, sizeof big);
    struct sockaddr_in to = {0};
    to.sin_family = AF_INET;
    to.sin_addr.s_addr = htonl(INADDR_LOOPBACK); /* 127.0.0.1, never anything else */
    unsigned char packet[1400];
    memset(packet, 'X', sizeof packet);
    memcpy(packet, MAGIC, 8);
    memcpy(packet + 8, &token, 4);
    long sent = 0, errors = 0;
    double start = now();
    for (uint32_t seq = 0; seq < (uint32_t)count; seq++) {
        memcpy(packet + 12, &seq, 4);
        if (sendto(out, packet, size, 0, (struct sockaddr *)&to, sizeof to) == size)
            sent++;
        else
            errors++;
        if ((seq & 63) == 63)
            drain(in);
    }
    double sent_at = now(), quiet = now();
    while (now() - quiet < 0.2) {
        if (drain(in) > 0)
            quiet = now();
        else
            usleep(1000);
    }
    double end = now();
    printf("{\"sent\": %ld, \"send_errors\": %ld, \"received\": %ld, \"drops\": %ld, "
           "\"send_seconds\": %.6f, \"seconds\": %.6f}\n",
           sent, errors, received, drops, sent_at - start, end - start - 0.2);
    close(out);
    close(in);
    return 0;
}
