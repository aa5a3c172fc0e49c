/* SPDX-License-Identifier: MIT */
/*
 * intr-latency: how long a cancel takes to reach a blocked call, and what
 * the alternatives cost, measured side by side in one run.
 *
 * This file: options, the order of the sections, the exit status
 * (0 every measurement completed, 1 one failed, 2 usage).
 */
#include "config.h"

#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <interruptible.h>

#include "lat.h"

struct lat_opts opt = {
	.loops = 1000,
	.poll_loops = 0,		/* 0: min(loops, 20) */
	.timeout_poll_ms = 100,
	.idle_ms = 1000,
	.threads = { 1000, 10000 },
	.nthreads = 2,
	.scale_place = PLACE_SPREAD,
	.scale_rounds = 3,
	.calls = (1u << NCALLS) - 1,
	.methods = (1u << NMETHODS) - 1,
	.sections = SEC_CANCEL | SEC_IDLE | SEC_OVERHEAD | SEC_SCALE,
	.pin = true,
};

static const char *const section_name[] = {
	"cancel", "idle", "overhead", "scale",
};

enum {
	OPT_PIN = 256, OPT_TIMEOUT_POLL, OPT_POLL_LOOPS, OPT_IDLE_MS,
	OPT_HISTOGRAM, OPT_JSON, OPT_CSV, OPT_SCALE_ROUNDS, OPT_VERSION,
	OPT_RESEND_US, OPT_NO_PIN, OPT_SCALE_PLACE,
};

static const char *const place_name[] = { "spread", "pinned", "free" };

static const struct option longopts[] = {
	{ "loops", required_argument, NULL, 'n' },
	{ "method", required_argument, NULL, 'm' },
	{ "call", required_argument, NULL, 'c' },
	{ "threads", required_argument, NULL, 't' },
	{ "section", required_argument, NULL, 's' },
	{ "pin", no_argument, NULL, OPT_PIN },
	{ "no-pin", no_argument, NULL, OPT_NO_PIN },
	{ "timeout-poll-ms", required_argument, NULL, OPT_TIMEOUT_POLL },
	{ "poll-loops", required_argument, NULL, OPT_POLL_LOOPS },
	{ "idle-ms", required_argument, NULL, OPT_IDLE_MS },
	{ "scale-rounds", required_argument, NULL, OPT_SCALE_ROUNDS },
	{ "scale-place", required_argument, NULL, OPT_SCALE_PLACE },
	{ "resend-us", required_argument, NULL, OPT_RESEND_US },
	{ "histogram", no_argument, NULL, OPT_HISTOGRAM },
	{ "json", required_argument, NULL, OPT_JSON },
	{ "csv", required_argument, NULL, OPT_CSV },
	{ "quiet", no_argument, NULL, 'q' },
	{ "help", no_argument, NULL, 'h' },
	{ "version", no_argument, NULL, OPT_VERSION },
	{ NULL, 0, NULL, 0 },
};

static void usage(FILE *f)
{
	fprintf(f,
"usage: intr-latency [options]\n"
"Measure how fast a cancel reaches a blocked call with libinterruptible,\n"
"beside the kernel's own wake-up and the usual alternatives.\n"
"\n"
"  -n, --loops N            cancels per method and call (default 1000)\n"
"  -m, --method LIST        eventfd,kill,nop,msgring,intr,intr-in-place,poll,\n"
"                           pthread_cancel\n"
"                           or all (default all)\n"
"  -c, --call LIST          uring,uring-raw,read,read-raw,poll,sleep,cond\n"
"                           or all (default all)\n"
"  -t, --threads LIST       blocked calls in the scale test, up to 4 sizes\n"
"                           (default 1000,10000)\n"
"  -s, --section LIST       cancel,idle,overhead,scale or all (default all)\n"
"      --pin                the canceller on one CPU, every waiter on another\n"
"                           (the default)\n"
"      --no-pin             leave placement to the kernel; targets are shown\n"
"                           only where the methods' waiters were placed alike\n"
"      --timeout-poll-ms MS period of the polling loop (default 100)\n"
"      --poll-loops N       cancels for the polling loop (default min(N, 20))\n"
"      --idle-ms MS         blocked interval for the cost test (default 1000)\n"
"      --scale-rounds N     rounds of the scale test (default 3, at most 16)\n"
"      --scale-place P      the scale test's workers: spread (every CPU but the\n"
"                           canceller's, the default), pinned (the canceller's\n"
"                           CPU) or free (every CPU); with --no-pin, free\n"
"      --resend-us US       the library's re-send interval (intr_configure)\n"
"      --histogram          print per-bucket counts under each table\n"
"      --json FILE          write every result as JSON\n"
"      --csv FILE           write every sample as CSV\n"
"  -q, --quiet              no progress on stderr\n"
"  -h, --help               this text\n"
"      --version            print the version\n"
"\n"
"Exit status: 0 all measurements completed, 1 one failed (a lost cancel,\n"
"a bound exceeded, a thread or ring that could not be made), 2 usage.\n"
"Targets are printed as PASS/MISS for information; they never change the\n"
"exit status.  A ratio of two methods whose waiters ran on the canceller's\n"
"CPU unequally often is no target: it is printed as n/a.\n");
}

static void bad(const char *fmt, const char *arg)
{
	fprintf(stderr, "intr-latency: ");
	fprintf(stderr, fmt, arg);
	fprintf(stderr, "\n");
	usage(stderr);
	exit(2);
}

static unsigned parse_uint(const char *s, const char *what, unsigned min,
			   unsigned max)
{
	unsigned long v;
	char *end;

	errno = 0;
	if (!*s || *s == '-' || *s == '+')
		bad("%s: not a number", what);
	v = strtoul(s, &end, 10);
	if (errno || *end || v < min || v > max)
		bad("%s: out of range or not a number", what);
	return (unsigned)v;
}

/* A comma list of names (or "all") to a bit set. */
static unsigned parse_list(const char *arg, const char *const *names,
			   const char *const *alt, unsigned n,
			   const char *what)
{
	char *copy = strdup(arg), *tok, *save = NULL;
	unsigned bits = 0, i;

	if (!copy)
		exit(1);
	for (tok = strtok_r(copy, ",", &save); tok;
	     tok = strtok_r(NULL, ",", &save)) {
		if (!strcmp(tok, "all")) {
			bits = (1u << n) - 1;
			continue;
		}
		for (i = 0; i < n; i++)
			if (!strcmp(tok, names[i]) ||
			    (alt && !strcmp(tok, alt[i])))
				break;
		if (i == n) {
			fprintf(stderr, "intr-latency: unknown %s '%s'\n",
				what, tok);
			usage(stderr);
			free(copy);
			exit(2);
		}
		bits |= 1u << i;
	}
	free(copy);
	if (!bits)
		bad("empty %s list", what);
	return bits;
}

/* -t: a comma list of sizes. */
static void parse_sizes(const char *arg)
{
	char *copy = strdup(arg), *tok, *save = NULL;

	if (!copy)
		exit(1);
	opt.nthreads = 0;
	for (tok = strtok_r(copy, ",", &save); tok;
	     tok = strtok_r(NULL, ",", &save)) {
		if (opt.nthreads == SCALE_SIZES)
			bad("%s: at most 4 sizes", arg);
		opt.threads[opt.nthreads++] = parse_uint(tok, "--threads", 1,
							 100000);
	}
	free(copy);
	if (!opt.nthreads)
		bad("%s: no size", arg);
}

static void parse(int argc, char **argv)
{
	int c;

	while ((c = getopt_long(argc, argv, "n:m:c:t:s:qh", longopts,
				NULL)) != -1) {
		switch (c) {
		case 'n':
			opt.loops = parse_uint(optarg, "--loops", 1, 10000000);
			break;
		case 'm':
			opt.methods = parse_list(optarg, method_name, NULL,
						 NMETHODS, "method");
			break;
		case 'c':
			opt.calls = parse_list(optarg, call_short, call_name,
					       NCALLS, "call");
			break;
		case 't':
			parse_sizes(optarg);
			break;
		case 's':
			opt.sections = parse_list(optarg, section_name, NULL, 4,
						  "section");
			break;
		case OPT_PIN:
			opt.pin = true;
			break;
		case OPT_NO_PIN:
			opt.pin = false;
			break;
		case OPT_TIMEOUT_POLL:
			opt.timeout_poll_ms = parse_uint(optarg, "--timeout-poll-ms",
							 1, 60000);
			break;
		case OPT_POLL_LOOPS:
			opt.poll_loops = parse_uint(optarg, "--poll-loops", 1,
						    10000000);
			break;
		case OPT_IDLE_MS:
			opt.idle_ms = parse_uint(optarg, "--idle-ms", 1, 600000);
			break;
		case OPT_SCALE_ROUNDS:
			opt.scale_rounds = parse_uint(optarg, "--scale-rounds",
						      1, 16);
			break;
		case OPT_SCALE_PLACE:
			opt.scale_place = parse_list(optarg, place_name, NULL,
						     3, "placement");
			if (opt.scale_place & (opt.scale_place - 1))
				bad("%s: one placement", optarg);
			opt.scale_place = __builtin_ctz(opt.scale_place);
			break;
		case OPT_RESEND_US:
			opt.resend_us = parse_uint(optarg, "--resend-us", 1,
						   100000000);
			break;
		case OPT_HISTOGRAM:
			opt.histogram = true;
			break;
		case OPT_JSON:
			opt.json = optarg;
			break;
		case OPT_CSV:
			opt.csv = optarg;
			break;
		case 'q':
			opt.quiet = true;
			break;
		case 'h':
			usage(stdout);
			exit(0);
		case OPT_VERSION:
			printf("intr-latency %s (libinterruptible %s)\n",
			       INTR_VERSION, intr_version());
			exit(0);
		default:
			usage(stderr);
			exit(2);
		}
	}
	if (optind < argc)
		bad("unexpected argument '%s'", argv[optind]);
	if (!opt.poll_loops)
		opt.poll_loops = opt.loops < 20 ? opt.loops : 20;
	/* Spread and pinned are placed against the canceller's CPU, which
	 * --no-pin leaves to the kernel. */
	if (!opt.pin)
		opt.scale_place = PLACE_FREE;
}

/* The library's signal and a different one for the raw peers. */
static int setup(void)
{
	struct intr_config cfg;
	int r;

	intr_config_default(&cfg);
	if (opt.resend_us)
		cfg.resend_us = opt.resend_us;
	if (opt.sections & SEC_SCALE) {
		unsigned i, most = 0;

		for (i = 0; i < opt.nthreads; i++)
			if (opt.threads[i] > most)
				most = opt.threads[i];
		cfg.max_workers = most + 64;
	}
	r = intr_configure(&cfg);
	if (r) {
		fprintf(stderr, "intr-latency: intr_configure: %s\n",
			strerror(-r));
		return r;
	}
	opt.lib_signo = cfg.signo;
	opt.resend_us = cfg.resend_us;
	opt.raw_signo = cfg.signo == SIGUSR2 ? SIGUSR1 : SIGUSR2;
	r = raw_signal_install();
	if (r) {
		fprintf(stderr, "intr-latency: sigaction: %s\n", strerror(-r));
		return r;
	}
	r = pin_setup();
	if (r) {
		fprintf(stderr, "intr-latency: sched_getaffinity: %s\n",
			strerror(-r));
		return r;
	}
	if (opt.pin)
		pin_self(0);
	watchdog_start();
	return 0;
}

int main(int argc, char **argv)
{
	static struct idle_result idle[NCALLS * NMETHODS];
	static struct scale_result scale[SCALE_SIZES];
	unsigned failures = 0, nidle = 0, nscale = 0;
	char title[160];
	int c, m, r;

	parse(argc, argv);
	opt.drop = getenv("INTR_LATENCY_DROP");
	opt.same_cpu = getenv("INTR_LATENCY_SAME_CPU");
	if (setup())
		return 1;
	printf("intr-latency %s: %ld CPUs, library signal %d, raw peers' signal %d\n",
	       intr_version(), sysconf(_SC_NPROCESSORS_ONLN), opt.lib_signo,
	       opt.raw_signo);
	if (!opt.pin)
		printf("not pinned (--no-pin): the kernel places the canceller and the waiters\n");
	else if (opt.cpu[0] == opt.cpu[1])
		printf("pinned: one CPU (%d) for the canceller and every waiter\n",
		       opt.cpu[0]);
	else
		printf("pinned: the canceller on CPU %d, every waiter (peer thread or library\n"
		       "worker) on CPU %d\n", opt.cpu[0], opt.cpu[1]);
	if (opt.same_cpu)
		printf("INTR_LATENCY_SAME_CPU: the %s waiters on the canceller's CPU\n",
		       opt.same_cpu);
	printf("times in microseconds from the instant before the cancel; stages: body = the\n"
	       "waiter back in user space with the cancel, final = its finalizers done,\n"
	       "return = the canceller knows it is done (intr_join / futex / pthread_join);\n"
	       "x floor = p50 over the eventfd floor's p50 for the same stage\n");

	if (opt.sections & SEC_CANCEL) {
		for (c = 0; c < NCALLS; c++) {
			if (!(opt.calls & (1u << c)))
				continue;
			failures += measure_cancel(c);
			snprintf(title, sizeof(title),
				 "cancel latency: %s (us); %u loops, polling %u loops at %u ms",
				 call_name[c], opt.loops, opt.poll_loops,
				 opt.timeout_poll_ms);
			progress("%60s\r", "");
			print_table(title, "cancel", call_name[c]);
			if (opt.histogram)
				print_histogram("cancel", call_name[c]);
			fflush(stdout);
		}
	}
	if (opt.sections & SEC_IDLE) {
		for (c = 0; c < NCALLS; c++) {
			if (!(opt.calls & (1u << c)))
				continue;
			for (m = 0; m < NMETHODS; m++) {
				if (!(opt.methods & (1u << m)) ||
				    !method_applies(m, c))
					continue;
				progress("idle: %s %s   \r", call_name[c],
					 method_name[m]);
				r = measure_idle(c, m, &idle[nidle]);
				if (r > 0)
					continue;	/* not usable here */
				if (r < 0) {
					idle[nidle].ok = false;
					failures++;
				}
				nidle++;
			}
		}
		progress("%60s\r", "");
		print_idle(idle, nidle);
		fflush(stdout);
	}
	if (opt.sections & SEC_OVERHEAD) {
		progress("overhead\r");
		failures += measure_overhead();
		progress("%60s\r", "");
		print_table("call overhead: one round trip, no cancel (us); x floor = over the futex ping-pong",
			    "overhead", "");
		if (opt.histogram)
			print_histogram("overhead", "");
		fflush(stdout);
	}
	if (opt.sections & SEC_SCALE) {
		for (; nscale < opt.nthreads; nscale++)
			failures += measure_scale(&scale[nscale],
						  opt.threads[nscale]);
		progress("%60s\r", "");
		print_scale(scale, nscale);
	}
	print_targets(idle, nidle, scale, nscale);

	if (opt.json) {
		r = write_json(opt.json, idle, nidle, scale, nscale);
		if (r) {
			fprintf(stderr, "intr-latency: %s: %s\n", opt.json,
				strerror(-r));
			failures++;
		}
	}
	if (opt.csv) {
		r = write_csv(opt.csv);
		if (r) {
			fprintf(stderr, "intr-latency: %s: %s\n", opt.csv,
				strerror(-r));
			failures++;
		}
	}
	if (failures)
		printf("\n%u measurement(s) failed\n", failures);
	return failures ? 1 : 0;
}
