/*
 * Runs a command and reports its peak RSS: peak_rss OUTFILE COMMAND [ARGS...]
 *
 * Why a wrapper: ru_maxrss survives exec (the kernel keeps the old mm's
 * high-water mark in signal->maxrss), and a child forked from the big
 * benchmark runner starts with the runner's high-water mark. Forked from
 * this small program instead, the command's ru_maxrss is its own.
 *
 * Writes the child's ru_maxrss (KiB) to OUTFILE and exits with the child's
 * exit status (128 + signal if it was killed).
 */
#define _GNU_SOURCE
#include <stdio.h>
#include <sys/resource.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

int main(int argc, char **argv)
{
	if (argc < 3) {
		fprintf(stderr, "usage: %s OUTFILE COMMAND [ARGS...]\n", argv[0]);
		return 2;
	}
	pid_t child = fork();
	if (child < 0) {
		perror("fork");
		return 2;
	}
	if (child == 0) {
		execvp(argv[2], argv + 2);
		perror(argv[2]);
		_exit(127);
	}
	int status = 0;
	struct rusage usage;
	while (wait4(child, &status, 0, &usage) < 0)
		;
	FILE *out = fopen(argv[1], "w");
	if (out != NULL) {
		fprintf(out, "%ld\n", usage.ru_maxrss);
		fclose(out);
	}
	if (WIFSIGNALED(status))
		return 128 + WTERMSIG(status);
	return WEXITSTATUS(status);
}
