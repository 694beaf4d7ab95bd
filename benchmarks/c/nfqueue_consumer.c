/*
 * The C side of the nfqueue verdict benchmark: a plain libnetfilter_queue
 * consumer that answers every packet with its own NF_ACCEPT verdict
 * (nfq_set_verdict: one sendto per packet), as most C consumers do.
 *
 *   gcc -O2 -o nfqueue_consumer nfqueue_consumer.c -lnetfilter_queue -lmnl
 *   ip netns exec NS ./nfqueue_consumer QUEUE COUNT [prequeued]
 *
 * Protocol with the benchmark driver: binds the queue (copy whole packets;
 * with "prequeued", a queue of COUNT + 1024 packets and a 256 MiB receive
 * buffer, else the kernel's defaults), prints "ready", waits for a line on
 * stdin (prequeued: the driver has queued COUNT packets by then; live: the
 * flood starts right after it), then consumes COUNT packets (or stops after
 * 2 s without one: packets the kernel dropped never come) and prints one
 * JSON line with the rate, timed from the first packet read to the last
 * verdict sent.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <libnetfilter_queue/libnetfilter_queue.h>
#include <linux/netfilter.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>

static long handled;

static double now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

static int on_packet(struct nfq_q_handle *queue, struct nfgenmsg *nfmsg, struct nfq_data *data, void *context)
{
	struct nfqnl_msg_packet_hdr *header = nfq_get_msg_packet_hdr(data);
	(void)nfmsg;
	(void)context;
	handled++;
	return nfq_set_verdict(queue, ntohl(header->packet_id), NF_ACCEPT, 0, NULL);
}

int main(int argc, char **argv)
{
	if (argc != 3 && argc != 4) {
		fprintf(stderr, "usage: %s QUEUE COUNT [prequeued]\n", argv[0]);
		return 2;
	}
	int queue_num = atoi(argv[1]);
	long count = atol(argv[2]);
	int prequeued = argc == 4 && strcmp(argv[3], "prequeued") == 0;
	struct nfq_handle *handle = nfq_open();
	if (!handle) {
		perror("nfq_open");
		return 1;
	}
	struct nfq_q_handle *queue = nfq_create_queue(handle, queue_num, on_packet, NULL);
	if (!queue) {
		perror("nfq_create_queue (is the queue bound by someone else?)");
		return 1;
	}
	if (nfq_set_mode(queue, NFQNL_COPY_PACKET, 0xffff) < 0 || (prequeued && nfq_set_queue_maxlen(queue, count + 1024) < 0)) {
		perror("nfq_set_mode / nfq_set_queue_maxlen");
		return 1;
	}
	int fd = nfq_fd(handle);
	if (prequeued) {
		int rcvbuf = 256 * 1024 * 1024;
		setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &rcvbuf, sizeof rcvbuf);
	}
	printf("ready\n");
	fflush(stdout);
	char line[16];
	if (!fgets(line, sizeof line, stdin))
		return 1;

	/* Bounded wait: a recv idle for 2 s ends the run (SO_RCVTIMEO -> EAGAIN). */
	struct timeval idle = {.tv_sec = 2, .tv_usec = 0};
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &idle, sizeof idle);
	static char buffer[65536 + 4096];
	double started = 0, last = 0;
	while (handled < count) {
		ssize_t length = recv(fd, buffer, sizeof buffer, 0);
		if (length < 0) {
			if (errno == ENOBUFS || errno == EINTR)
				continue; /* the kernel dropped something: keep counting what arrives */
			if (errno == EAGAIN || errno == EWOULDBLOCK)
				break; /* idle: what was dropped will not come */
			perror("recv");
			return 1;
		}
		if (!started)
			started = now();
		nfq_handle_packet(handle, buffer, (int)length);
		last = now();
	}
	double elapsed = (started && last > started) ? last - started : 1e-9;
	printf("{\"contestant\": \"c-libnetfilter_queue\", \"packets\": %ld, \"seconds\": %.6f, \"verdicts_per_second\": %.0f, "
	       "\"verdict_syscalls\": %ld}\n", handled, elapsed, handled / elapsed, handled);
	nfq_destroy_queue(queue);
	nfq_close(handle);
	return 0;
}
