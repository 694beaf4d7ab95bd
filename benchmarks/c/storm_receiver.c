/*
 * The C receiver of the notification-storm scenario: joins the link,
 * IPv4/IPv6 address and IPv4/IPv6 route groups, counts RTM_NEWROUTE and
 * RTM_DELROUTE of the main table and keeps the set of /32 routes under
 * 10.0.0.0/8 as a bitmap (2 MiB), so the final view can be compared with the
 * kernel's.
 *
 * usage: storm_receiver RCVBUF VIEW_FILE   (RCVBUF 0 = the system default)
 * Prints "ready" once subscribed, then at the end one JSON line:
 *   {"received": N, "overruns": N, "elapsed": seconds, "sentinel": 0|1}
 * and writes the view to VIEW_FILE, one dotted address per line.
 *
 * It stops at the sentinel (an RTM_NEWROUTE in table 242), after 3 s without
 * any message once the storm started, or after 120 s in all.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define SENTINEL_TABLE 242

static uint8_t view[(1 << 24) / 8];

static double now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

int main(int argc, char **argv)
{
	static char buffer[65536] __attribute__((aligned(NLMSG_ALIGNTO)));
	int groups[] = { RTNLGRP_LINK, RTNLGRP_IPV4_IFADDR, RTNLGRP_IPV6_IFADDR, RTNLGRP_IPV4_ROUTE, RTNLGRP_IPV6_ROUTE };
	long received = 0, overruns = 0;
	int sentinel = 0;
	double first = 0, last = 0, started = now();

	if (argc < 3) {
		fprintf(stderr, "usage: %s RCVBUF VIEW_FILE\n", argv[0]);
		return 2;
	}
	int rcvbuf = atoi(argv[1]);
	int fd = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_ROUTE);
	if (fd < 0) {
		perror("socket");
		return 2;
	}
	/* SO_RCVBUFFORCE ignores net.core.rmem_max (needs CAP_NET_ADMIN). */
	if (rcvbuf > 0 && setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &rcvbuf, sizeof(rcvbuf)) < 0) {
		perror("SO_RCVBUFFORCE");
		return 2;
	}
	/* Bind first: an unbound socket has portid 0, which do_one_broadcast()
	 * takes for the sender's own (the kernel's) and skips. */
	struct sockaddr_nl local = { .nl_family = AF_NETLINK };
	if (bind(fd, (struct sockaddr *)&local, sizeof(local)) < 0) {
		perror("bind");
		return 2;
	}
	for (unsigned i = 0; i < sizeof(groups) / sizeof(groups[0]); i++) {
		if (setsockopt(fd, SOL_NETLINK, NETLINK_ADD_MEMBERSHIP, &groups[i], sizeof(int)) < 0) {
			perror("NETLINK_ADD_MEMBERSHIP");
			return 2;
		}
	}
	printf("ready\n");
	fflush(stdout);

	struct pollfd pfd = { .fd = fd, .events = POLLIN };
	while (!sentinel) {
		double t = now();
		if (t - started > 120 || (first > 0 && t - last > 3))
			break;
		int ready = poll(&pfd, 1, 200);
		if (ready <= 0)
			continue;
		ssize_t got = recv(fd, buffer, sizeof(buffer), MSG_DONTWAIT);
		if (got < 0) {
			if (errno == ENOBUFS) { /* the socket overran: messages were lost */
				overruns++;
				continue;
			}
			if (errno == EAGAIN || errno == EINTR)
				continue;
			perror("recv");
			return 2;
		}
		last = now();
		if (first == 0)
			first = last;
		int remaining = (int)got;
		for (struct nlmsghdr *msg = (struct nlmsghdr *)buffer; NLMSG_OK(msg, remaining);
		     msg = NLMSG_NEXT(msg, remaining)) {
			if (msg->nlmsg_type != RTM_NEWROUTE && msg->nlmsg_type != RTM_DELROUTE)
				continue;
			struct rtmsg *route = NLMSG_DATA(msg);
			if (route->rtm_family != AF_INET)
				continue;
			if (route->rtm_table == SENTINEL_TABLE) {
				sentinel = msg->nlmsg_type == RTM_NEWROUTE;
				continue;
			}
			if (route->rtm_table != RT_TABLE_MAIN || route->rtm_dst_len != 32)
				continue;
			received++;
			int length = RTM_PAYLOAD(msg);
			for (struct rtattr *attr = RTM_RTA(route); RTA_OK(attr, length); attr = RTA_NEXT(attr, length)) {
				if (attr->rta_type != RTA_DST || RTA_PAYLOAD(attr) != 4)
					continue;
				uint32_t dst = ntohl(*(uint32_t *)RTA_DATA(attr));
				if ((dst >> 24) != 10)
					break;
				uint32_t bit = dst & 0xffffff;
				if (msg->nlmsg_type == RTM_NEWROUTE)
					view[bit / 8] |= 1u << (bit % 8);
				else
					view[bit / 8] &= ~(1u << (bit % 8));
				break;
			}
		}
	}
	FILE *out = fopen(argv[2], "w");
	if (out == NULL) {
		perror(argv[2]);
		return 2;
	}
	for (uint32_t bit = 0; bit < (1u << 24); bit++)
		if (view[bit / 8] & (1u << (bit % 8)))
			fprintf(out, "10.%u.%u.%u\n", bit >> 16, (bit >> 8) & 0xff, bit & 0xff);
	fclose(out);
	printf("{\"received\": %ld, \"overruns\": %ld, \"elapsed\": %.9f, \"sentinel\": %d}\n", received, overruns,
	       last > first ? last - first : 0.0, sentinel);
	return 0;
}
