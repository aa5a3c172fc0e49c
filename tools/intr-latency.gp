# Cancel-latency distributions from intr-latency's CSV, one panel per call:
# for each method, the fraction of cancels (y) that took at most x us.
#
#   gnuplot -e "in='bench.csv'; out='bench.svg'" tools/intr-latency.gp
#
# Variables (all optional): in, out (.svg or .png), calls (a space-separated
# list of call names as in the CSV), stage (body, final or return), step.
if (!exists("in")) in = 'intr-latency.csv'
if (!exists("out")) out = 'intr-latency.svg'
if (!exists("calls")) calls = 'intr_uring_wait_cqe intr_read'
if (!exists("stage")) stage = 'body'
if (!exists("step")) step = 1	# plot every step-th sample: smaller files
methods = 'eventfd kill nop msgring intr poll pthread_cancel'

if (out[strlen(out) - 3:] eq '.png') {
	set terminal pngcairo size 1200, 460 font 'sans,10'
} else {
	set terminal svg size 1200, 460 dynamic font 'sans,11'
}
set output out
set datafile separator ','
set logscale x 10
set format x '10^{%L}'
set xrange [1:*]
set yrange [0:1]
set xlabel sprintf('cancel latency, us (stage: %s; log scale)', stage)
set ylabel 'fraction of cancels'
set grid xtics ytics mxtics
set key bottom right noenhanced opaque
set style data lines

sel(c, m) = (strcol(1) eq 'cancel' && strcol(2) eq c && strcol(3) eq m && \
	     strcol(4) eq stage) ? $6 / 1000.0 : NaN

set multiplot layout 1, words(calls) title 'intr-latency: cancel latency by method' noenhanced
do for [i = 1:words(calls)] {
	cn = word(calls, i)
	set title cn noenhanced
	plot for [m in methods] in every step using (sel(cn, m)):(1) smooth cnormal \
		lw 2 title m
}
unset multiplot
