# Cancel-latency distributions from intr-latency's CSV, one panel per call:
# for each method, the fraction of cancels (y) that took at most x us.
#
#   gnuplot -e "in='bench.csv'; out='bench.svg'" tools/intr-latency.gp
#
# Variables (all optional): in, out (.svg or .png), calls (a space-separated
# list of call names as in the CSV), stage (body, final or return).
if (!exists("in")) in = 'intr-latency.csv'
if (!exists("out")) out = 'intr-latency.svg'
if (!exists("calls")) calls = 'intr_uring_wait_cqe intr_read'
if (!exists("stage")) stage = 'body'
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
set grid xtics ytics
set key bottom right noenhanced opaque
set style data lines

# The samples of one series in us, rounded to three significant digits:
# invisible on the log scale, and samples that round alike make one point
# of the curve, which keeps the file small.
r3(x) = x <= 0 ? x : (e = 10 ** (floor(log10(x)) - 2), floor(x / e + 0.5) * e)
sel(c, m) = (strcol(1) eq 'cancel' && strcol(2) eq c && strcol(3) eq m && \
	     strcol(4) eq stage) ? r3($6 / 1000.0) : NaN

set multiplot layout 1, words(calls) title 'intr-latency: cancel latency by method' noenhanced
do for [i = 1:words(calls)] {
	cn = word(calls, i)
	set title cn noenhanced
	plot for [m in methods] in using (sel(cn, m)):(1) smooth cnormal \
		lw 2 title m
}
unset multiplot
