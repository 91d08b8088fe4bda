/* What the C baselines share: a directory listed with getdents64 on an fd
 * opened once, as the project lists /proc (a DIR stream's fdopendir adds an
 * fstat and two fcntl calls per directory), files read in pieces of 64 KiB
 * as the project reads them, and the time of one run. */
#define _GNU_SOURCE
#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

struct names {
	int fd;
	char *buf;
	size_t size;
	ssize_t n, pos;
};

/* names_open lists the directory open as fd into buf. */
static struct names names_open(int fd, char *buf, size_t size) {
	struct names d = {fd, buf, size, 0, 0};
	return d;
}

/* next_name is the next name of the directory but . and .., NULL at the
 * end (or on an error). */
static const char *next_name(struct names *d) {
	for (;;) {
		if (d->pos >= d->n) {
			d->n = getdents64(d->fd, d->buf, d->size);
			d->pos = 0;
			if (d->n <= 0)
				return NULL;
		}
		struct dirent64 *e = (void *)(d->buf + d->pos);
		d->pos += e->d_reclen;
		if (strcmp(e->d_name, ".") && strcmp(e->d_name, ".."))
			return e->d_name;
	}
}

/* pids_open lists /proc into buf, for next_pid; its fd is negative when
 * /proc cannot be opened. */
static struct names pids_open(char *buf, size_t size) {
	return names_open(open("/proc", O_RDONLY | O_DIRECTORY | O_CLOEXEC), buf, size);
}

/* next_pid is the next process directory of /proc listed by d, NULL at
 * the end. */
static const char *next_pid(struct names *d) {
	const char *name;
	while ((name = next_name(d)) && (name[0] < '0' || name[0] > '9'))
		;
	return name;
}

static char file_buf[64 << 10];

/* read_file returns the bytes of a whole file, 0 when it cannot be opened. */
static long read_file(const char *path) {
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return 0;
	long total = 0;
	ssize_t m;
	while ((m = read(fd, file_buf, sizeof file_buf)) > 0)
		total += m;
	close(fd);
	return total;
}

static long long now(clockid_t clock) {
	struct timespec ts;
	clock_gettime(clock, &ts);
	return ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

/* time_runs runs run n times, printing "cpu_ns wall_ns bytes" of each, the
 * line the harness reads. */
static void time_runs(int n, long (*run)(void)) {
	for (int i = 0; i < n; i++) {
		long long c0 = now(CLOCK_PROCESS_CPUTIME_ID), w0 = now(CLOCK_MONOTONIC);
		long bytes = run();
		printf("%lld %lld %ld\n", now(CLOCK_PROCESS_CPUTIME_ID) - c0, now(CLOCK_MONOTONIC) - w0, bytes);
		fflush(stdout);
	}
}
