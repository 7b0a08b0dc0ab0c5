#!/usr/bin/env bash
# Draws the echo benchmark's round trips per second (index 0 of the data
# written by bench/run_echo_bench.sh) as grouped bars per server, one bar
# for 100 and one for 1000 connections, into an SVG (gnuplot-nox; no X).
# Usage: bench/plot_echo.sh [data, default bench/results/echo.dat]
#                           [svg, default docs/echo_bench.svg]
set -euo pipefail
cd "$(dirname "$0")/.."
dat=${1:-bench/results/echo.dat} svg=${2:-docs/echo_bench.svg}
subtitle=$(sed -n '2s/^# //p' "$dat")
mkdir -p "$(dirname "$svg")"
gnuplot <<GP
set terminal svg size 860,460 dynamic enhanced font "sans,12" background rgb "white"
set output "$svg"
set title "TCP echo servers, 64-byte round trips over loopback\n{/*0.8 $subtitle}"
set ylabel "round trips / s"
set yrange [0:*]
set format y "%.0s%c"
set grid ytics
set key below horizontal
set style data histograms
set style histogram clustered gap 1
set style fill solid 0.85 border -1
set boxwidth 0.9
set xtics nomirror noenhanced
plot "$dat" index 0 using 2:xtic(1) title "100 connections" lc rgb "#4477aa", \
     "" index 0 using 5 title "1000 connections" lc rgb "#ee6677"
GP
