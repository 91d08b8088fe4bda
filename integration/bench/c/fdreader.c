/* Minimal fd-mode fanotify reader: a filesystem mark for FAN_CLOSE_WRITE on
 * DIR; per event a readlink of the event's fd, relative to /proc/self/fd
 * opened once, and a close. Prints "ready",
 * then, once it sees DIR/SENTINEL, "files=N cpu_ns=C": the files under DIR
 * it saw and the CPU time spent since it was ready. */
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/fanotify.h>
#include <time.h>
#include <unistd.h>

static long long cpu_ns(void) {
	struct timespec ts;
	clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
	return ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

int main(int argc, char **argv) {
	if (argc != 3) {
		fprintf(stderr, "usage: fdreader DIR SENTINEL\n");
		return 2;
	}
	const char *dir = argv[1], *sentinel = argv[2];
	int g = fanotify_init(FAN_CLASS_NOTIF | FAN_CLOEXEC, O_RDONLY | O_LARGEFILE | O_CLOEXEC);
	if (g < 0 || fanotify_mark(g, FAN_MARK_ADD | FAN_MARK_FILESYSTEM, FAN_CLOSE_WRITE, AT_FDCWD, dir) < 0) {
		perror("fanotify");
		return 1;
	}
	int fds = open("/proc/self/fd", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fds < 0) {
		perror("/proc/self/fd");
		return 1;
	}
	printf("ready\n");
	fflush(stdout);
	long long start = cpu_ns();
	size_t dlen = strlen(dir);
	static char buf[256 << 10];
	char link[4096], name[16];
	long files = 0;
	for (;;) {
		ssize_t n = read(g, buf, sizeof buf);
		if (n <= 0) {
			perror("read");
			return 1;
		}
		struct fanotify_event_metadata *ev = (void *)buf;
		for (; FAN_EVENT_OK(ev, n); ev = FAN_EVENT_NEXT(ev, n)) {
			if (ev->fd < 0)
				continue;
			snprintf(name, sizeof name, "%d", ev->fd);
			ssize_t k = readlinkat(fds, name, link, sizeof link - 1);
			close(ev->fd);
			if (k < 0 || (size_t)k <= dlen || strncmp(link, dir, dlen) || link[dlen] != '/')
				continue;
			link[k] = 0;
			if (!strcmp(link + dlen + 1, sentinel)) {
				printf("files=%ld cpu_ns=%lld\n", files, cpu_ns() - start);
				return 0;
			}
			files++;
		}
	}
}
