/*
 * The C baseline of the route-dump scenario: one RTM_GETROUTE dump of the
 * IPv4 tables, a recv() loop into a 32 KiB buffer that only walks the
 * nlmsghdr chain and counts messages until NLMSG_DONE.
 *
 * 32 KiB because netlink_recvmsg() grows the socket's max_recvmsg_len to the
 * largest buffer it has seen (capped at 32 KiB), and netlink_dump() sizes its
 * chunks from that: a smaller buffer means more, smaller datagrams.
 *
 * Output (stdout, one line): {"count": N, "elapsed": seconds}
 * Exit status 2 on any error (the message goes to stderr).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static double now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

int main(int argc, char **argv)
{
	static char buffer[32768] __attribute__((aligned(NLMSG_ALIGNTO)));
	struct {
		struct nlmsghdr header;
		struct rtmsg body;
	} request;
	struct sockaddr_nl kernel = { .nl_family = AF_NETLINK };
	long count = 0;
	int done = 0;
	int fd = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_ROUTE);

	if (fd < 0) {
		perror("socket");
		return 2;
	}
	memset(&request, 0, sizeof(request));
	request.header.nlmsg_len = sizeof(request);
	request.header.nlmsg_type = RTM_GETROUTE;
	request.header.nlmsg_flags = NLM_F_REQUEST | NLM_F_DUMP;
	request.header.nlmsg_seq = 1;
	/* "all": every family (AF_UNSPEC), as `ip route show table all` asks */
	request.body.rtm_family = argc > 1 && strcmp(argv[1], "all") == 0 ? AF_UNSPEC : AF_INET;

	double start = now();
	if (sendto(fd, &request, sizeof(request), 0, (struct sockaddr *)&kernel, sizeof(kernel)) < 0) {
		perror("sendto");
		return 2;
	}
	while (!done) {
		ssize_t got = recv(fd, buffer, sizeof(buffer), 0);
		if (got < 0) {
			if (errno == EINTR)
				continue;
			perror("recv");
			return 2;
		}
		if (got == 0)
			break;
		int remaining = (int)got;
		for (struct nlmsghdr *msg = (struct nlmsghdr *)buffer; NLMSG_OK(msg, remaining);
		     msg = NLMSG_NEXT(msg, remaining)) {
			if (msg->nlmsg_type == NLMSG_DONE) {
				done = 1;
				break;
			}
			if (msg->nlmsg_type == NLMSG_ERROR) {
				fprintf(stderr, "the kernel answered the dump with an error\n");
				return 2;
			}
			count++;
		}
	}
	double elapsed = now() - start;
	printf("{\"count\": %ld, \"elapsed\": %.9f}\n", count, elapsed);
	close(fd);
	return 0;
}
