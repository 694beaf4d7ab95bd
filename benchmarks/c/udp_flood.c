/*
 * UDP flood for the nfqueue scenario: sends COUNT datagrams of PAYLOAD bytes
 * to ADDRESS:PORT as fast as sendmmsg() allows, in bursts of 64, optionally
 * paced to at most RATE packets per second (0 = unpaced).
 *
 * usage: udp_flood ADDRESS PORT COUNT PAYLOAD [RATE]
 * Output (stdout): {"sent": N, "elapsed": seconds}
 *
 * ENOBUFS/EAGAIN from a full qdisc is retried after a short sleep, so every
 * packet is eventually handed to the stack; the run is bounded by COUNT and
 * by a 60 s deadline.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define BURST 64

static double now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

int main(int argc, char **argv)
{
	if (argc < 5) {
		fprintf(stderr, "usage: %s ADDRESS PORT COUNT PAYLOAD [RATE]\n", argv[0]);
		return 2;
	}
	struct sockaddr_in target = { .sin_family = AF_INET, .sin_port = htons(atoi(argv[2])) };
	if (inet_pton(AF_INET, argv[1], &target.sin_addr) != 1) {
		fprintf(stderr, "bad address %s\n", argv[1]);
		return 2;
	}
	long count = atol(argv[3]);
	int payload_size = atoi(argv[4]);
	double rate = argc > 5 ? atof(argv[5]) : 0;
	if (payload_size < 8 || payload_size > 1400) {
		fprintf(stderr, "payload must be 8..1400 bytes\n");
		return 2;
	}
	int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	/* Not connected: an ICMP port unreachable coming back must not turn
	 * into ECONNREFUSED on the next send. */
	if (fd < 0) {
		perror("socket");
		return 2;
	}
	static char payloads[BURST][1400];
	struct iovec iov[BURST];
	struct mmsghdr msgs[BURST];
	memset(msgs, 0, sizeof(msgs));
	for (int i = 0; i < BURST; i++) {
		iov[i].iov_base = payloads[i];
		iov[i].iov_len = payload_size;
		msgs[i].msg_hdr.msg_iov = &iov[i];
		msgs[i].msg_hdr.msg_iovlen = 1;
		msgs[i].msg_hdr.msg_name = &target;
		msgs[i].msg_hdr.msg_namelen = sizeof(target);
	}
	long sent = 0;
	double start = now(), deadline = start + 60;
	while (sent < count && now() < deadline) {
		int burst = count - sent < BURST ? (int)(count - sent) : BURST;
		for (int i = 0; i < burst; i++)
			memcpy(payloads[i], &(long){ sent + i }, sizeof(long)); /* sequence number */
		int got = sendmmsg(fd, msgs, burst, 0);
		if (got < 0) {
			if (errno == ENOBUFS || errno == EAGAIN || errno == EINTR) {
				usleep(50);
				continue;
			}
			perror("sendmmsg");
			return 2;
		}
		sent += got;
		if (rate > 0) {
			double ahead = sent / rate - (now() - start);
			if (ahead > 0)
				usleep((useconds_t)(ahead * 1e6));
		}
	}
	printf("{\"sent\": %ld, \"elapsed\": %.9f}\n", sent, now() - start);
	return 0;
}
