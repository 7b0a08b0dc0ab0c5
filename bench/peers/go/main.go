// Command spindlepeers measures Go goroutine costs that Spindle's own
// benchmarks are compared against side by side.
//
// Every measurement is repeated -reps times; each repetition prints
//
//	go/<name>/procs:<P>/rep:<i> <value> <unit>
//
// and the median of the repetitions is printed last as
//
//	go/<name>/procs:<P>/median <value> <unit>
//
// Lines starting with '#' are informational.
package main

import (
	"bufio"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

var (
	benchFlag = flag.String("bench", "all", "comma-separated list of measurements, or 'all': "+strings.Join(order, ","))
	procs     = flag.Int("procs", 1, "GOMAXPROCS for the measurements (yield always uses 1)")
	reps      = flag.Int("reps", 5, "repetitions per measurement; the median is reported")
	target    = flag.Duration("target", 500*time.Millisecond, "approximate duration of one repetition")
	cpuTasks  = flag.Int("cpu-tasks", 8, "goroutines sharing the fixed work of the cpu measurement")
	parked    = flag.Int("parked", 100000, "goroutines parked by parked_rss")
	rssChild  = flag.Bool("parked-rss-child", false, "internal: run one parked_rss repetition and print bytes")
)

var order = []string{"yield", "spawn_join", "spawn_join_batch", "parked_rss", "pingpong", "pingpong_locked", "cpu",
	"mutex_uncontended", "mutex_contended", "chan_unbuffered_pingpong", "chan_buffered_1p1c", "chan_buffered_4p4c", "select4"}

// sink keeps results observable so that the compiler cannot drop the work.
var sink uint64

func main() {
	flag.Parse()
	if *rssChild {
		runtime.GOMAXPROCS(*procs)
		fmt.Println(parkedRSSOnce(*parked))
		return
	}
	selected := map[string]bool{}
	for _, name := range strings.Split(*benchFlag, ",") {
		name = strings.TrimSpace(name)
		switch {
		case name == "all":
			for _, n := range order {
				selected[n] = true
			}
		case name == "spawn_join":
			selected["spawn_join"], selected["spawn_join_batch"] = true, true
		case contains(order, name):
			selected[name] = true
		default:
			fmt.Fprintf(os.Stderr, "unknown measurement %q (have %s, all)\n", name, strings.Join(order, ","))
			os.Exit(2)
		}
	}
	fmt.Printf("# %s %s/%s procs=%d reps=%d cpus=%d\n", runtime.Version(), runtime.GOOS, runtime.GOARCH, *procs, *reps, runtime.NumCPU())
	for _, name := range order {
		if !selected[name] {
			continue
		}
		switch name {
		case "yield":
			// Gosched only alternates two goroutines deterministically on one P.
			timed("yield", 1, "ns/yield", yieldN)
		case "spawn_join":
			timed("spawn_join", *procs, "ns/op", spawnJoinN)
		case "spawn_join_batch":
			timed("spawn_join_batch", *procs, "ns/goroutine", spawnJoinBatchN)
		case "parked_rss":
			parkedRSS()
		case "pingpong":
			timed("pingpong", *procs, "ns/roundtrip", pingPongN)
		case "pingpong_locked":
			timed("pingpong_locked", *procs, "ns/roundtrip", pingPongLockedN)
		case "cpu":
			cpuBound()
		case "mutex_uncontended":
			timed("mutex_uncontended", *procs, "ns/op", mutexUncontendedN)
		case "mutex_contended":
			timed("mutex_contended", *procs, "ns/op", mutexContendedN)
		case "chan_unbuffered_pingpong":
			// Exactly the pingpong measurement, under the name Spindle uses.
			timed("chan_unbuffered_pingpong", *procs, "ns/roundtrip", pingPongN)
		case "chan_buffered_1p1c":
			timed("chan_buffered_1p1c", *procs, "ns/item", chanBuffered1p1cN)
		case "chan_buffered_4p4c":
			timed("chan_buffered_4p4c", *procs, "ns/item", chanBuffered4p4cN)
		case "select4":
			timed("select4", *procs, "ns/select", select4N)
		}
	}
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// timed calibrates n so that run(n) takes about -target, then runs -reps
// repetitions and reports elapsed/units, where run returns the number of
// units (yields, goroutines, round trips) it performed.
func timed(name string, p int, unit string, run func(n int) int) {
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(p))
	n := 1000
	for {
		start := time.Now()
		run(n)
		el := time.Since(start)
		if el >= *target/4 || n >= 1<<30 {
			n = int(float64(n) * float64(*target) / float64(el+1))
			break
		}
		n *= 4
	}
	if n < 1 {
		n = 1
	}
	var vals []float64
	for i := 1; i <= *reps; i++ {
		runtime.GC()
		start := time.Now()
		units := run(n)
		v := float64(time.Since(start).Nanoseconds()) / float64(units)
		vals = append(vals, v)
		report(name, p, i, v, unit)
	}
	report(name, p, 0, median(vals), unit)
}

func report(name string, p, rep int, v float64, unit string) {
	suffix := "median"
	if rep > 0 {
		suffix = "rep:" + strconv.Itoa(rep)
	}
	fmt.Printf("go/%s/procs:%d/%s %.1f %s\n", name, p, suffix, v, unit)
}

func median(v []float64) float64 {
	s := append([]float64(nil), v...)
	sort.Float64s(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// yieldN: two goroutines each call runtime.Gosched n times. With GOMAXPROCS=1
// they hand the only P to each other, so each Gosched is one switch.
func yieldN(n int) int {
	var wg sync.WaitGroup
	wg.Add(2)
	for g := 0; g < 2; g++ {
		go func() {
			defer wg.Done()
			for i := 0; i < n; i++ {
				runtime.Gosched()
			}
		}()
	}
	wg.Wait()
	return 2 * n
}

// spawnJoinN: spawn one empty goroutine and wait for it, n times in sequence.
func spawnJoinN(n int) int {
	var wg sync.WaitGroup
	for i := 0; i < n; i++ {
		wg.Add(1)
		go wg.Done()
		wg.Wait()
	}
	return n
}

// spawnJoinBatchN: spawn 1000 empty goroutines, then wait for all of them.
func spawnJoinBatchN(n int) int {
	const batch = 1000
	rounds := (n + batch - 1) / batch
	var wg sync.WaitGroup
	for r := 0; r < rounds; r++ {
		wg.Add(batch)
		for i := 0; i < batch; i++ {
			go wg.Done()
		}
		wg.Wait()
	}
	return rounds * batch
}

// pingPongN: two goroutines bounce a token over two unbuffered channels, n
// round trips. With -procs 2 the partner may run on another P/thread, but Go
// usually keeps a freshly readied goroutine on the waker's P (runnext), so
// most hand-offs stay on one thread.
func pingPongN(n int) int { return pingPong(n, false) }

// pingPongLockedN: the same, but each side is locked to its own OS thread
// (runtime.LockOSThread), so every hand-off is a cross-thread wake-up.
func pingPongLockedN(n int) int { return pingPong(n, true) }

func pingPong(n int, locked bool) int {
	ping, pong := make(chan int), make(chan int)
	var wg sync.WaitGroup
	wg.Add(2)
	go func() {
		defer wg.Done()
		if locked {
			runtime.LockOSThread()
			defer runtime.UnlockOSThread()
		}
		for v := range ping {
			pong <- v
		}
	}()
	go func() {
		defer wg.Done()
		if locked {
			runtime.LockOSThread()
			defer runtime.UnlockOSThread()
		}
		for i := 0; i < n; i++ {
			ping <- i
			<-pong
		}
		close(ping)
	}()
	wg.Wait()
	return n
}

// parkedRSS runs each repetition in a fresh child process: Go never frees the
// g structures (and caches stacks) of finished goroutines, so a second
// in-process repetition, or any earlier measurement, would hide the cost.
func parkedRSS() {
	exe, err := os.Executable()
	if err != nil {
		fmt.Fprintln(os.Stderr, "parked_rss:", err)
		os.Exit(1)
	}
	var vals []float64
	for i := 1; i <= *reps; i++ {
		out, err := exec.Command(exe, "-parked-rss-child", "-procs", strconv.Itoa(*procs), "-parked", strconv.Itoa(*parked)).Output()
		if err != nil {
			fmt.Fprintln(os.Stderr, "parked_rss child:", err)
			os.Exit(1)
		}
		v, err := strconv.ParseFloat(strings.TrimSpace(string(out)), 64)
		if err != nil {
			fmt.Fprintln(os.Stderr, "parked_rss child output:", err)
			os.Exit(1)
		}
		vals = append(vals, v)
		report("parked_rss", *procs, i, v, "bytes/goroutine")
	}
	report("parked_rss", *procs, 0, median(vals), "bytes/goroutine")
}

// parkedRSSOnce parks count goroutines on a channel receive and returns
// (VmRSS after - VmRSS before) / count, then releases them.
func parkedRSSOnce(count int) float64 {
	release := make(chan struct{})
	var started, done sync.WaitGroup
	started.Add(count)
	done.Add(count)
	runtime.GC()
	before := vmRSS()
	for i := 0; i < count; i++ {
		go func() {
			started.Done()
			<-release
			done.Done()
		}()
	}
	started.Wait()
	// Let the last goroutines get from started.Done to the receive.
	for i := 0; i < 10; i++ {
		runtime.Gosched()
	}
	after := vmRSS()
	close(release)
	done.Wait()
	return float64(after-before) / float64(count)
}

// vmRSS returns the resident set size in bytes from /proc/self/status.
func vmRSS() int64 {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		panic(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if fields := strings.Fields(sc.Text()); len(fields) >= 2 && fields[0] == "VmRSS:" {
			kb, err := strconv.ParseInt(fields[1], 10, 64)
			if err != nil {
				panic(err)
			}
			return kb * 1024
		}
	}
	panic("VmRSS not found in /proc/self/status")
}

// cpuBound splits a fixed amount of xorshift work (200M steps) across
// -cpu-tasks goroutines and reports wall time; comparing -procs 1 with
// -procs 2 gives the parallel speed-up.
func cpuBound() {
	const total = 200_000_000
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(*procs))
	tasks := *cpuTasks
	steps := total / tasks // hoisted: Go does not hoist loop invariants itself
	var vals []float64
	for rep := 1; rep <= *reps; rep++ {
		results := make([]uint64, tasks)
		var wg sync.WaitGroup
		start := time.Now()
		for t := 0; t < tasks; t++ {
			wg.Add(1)
			go func(t int) {
				defer wg.Done()
				x := uint64(t)*0x9E3779B97F4A7C15 + 1
				for i := 0; i < steps; i++ {
					x ^= x << 13
					x ^= x >> 7
					x ^= x << 17
				}
				results[t] = x
			}(t)
		}
		wg.Wait()
		ms := float64(time.Since(start).Nanoseconds()) / 1e6
		for _, r := range results {
			sink ^= r
		}
		vals = append(vals, ms)
		report("cpu", *procs, rep, ms, "ms")
	}
	report("cpu", *procs, 0, median(vals), "ms")
	fmt.Printf("# cpu: %d goroutines x %d xorshift steps, checksum %#x\n", tasks, steps, sink)
}

// mutexUncontendedN: one goroutine locks and unlocks a sync.Mutex n times.
func mutexUncontendedN(n int) int {
	var mu sync.Mutex
	var counter uint64
	for i := 0; i < n; i++ {
		mu.Lock()
		counter++
		mu.Unlock()
	}
	sink ^= counter
	return n
}

// mutexContendedN: 8 goroutines each do Lock; counter++; Unlock n/8 times on
// one sync.Mutex; reported as wall time per lock+unlock pair.
func mutexContendedN(n int) int {
	const workers = 8
	per := (n + workers - 1) / workers
	var mu sync.Mutex
	var counter uint64
	var wg sync.WaitGroup
	wg.Add(workers)
	for w := 0; w < workers; w++ {
		go func() {
			defer wg.Done()
			for i := 0; i < per; i++ {
				mu.Lock()
				counter++
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	sink ^= counter
	return per * workers
}

// chanCap is the capacity of the buffered channels below (a power of two, as
// Boost.Fiber's buffered_channel requires).
const chanCap = 128

// chanBuffered1p1cN: one producer sends n ints into a channel of capacity
// 128 and closes it; one consumer receives until it is closed.
func chanBuffered1p1cN(n int) int { return chanBuffered(n, 1, 1) }

// chanBuffered4p4cN: 4 producers send n/4 ints each into one channel of
// capacity 128; 4 consumers receive until it is closed after the last send.
func chanBuffered4p4cN(n int) int { return chanBuffered(n, 4, 4) }

func chanBuffered(n, producers, consumers int) int {
	per := (n + producers - 1) / producers
	ch := make(chan int, chanCap)
	var prod, cons sync.WaitGroup
	sums := make([]uint64, consumers)
	prod.Add(producers)
	cons.Add(consumers)
	for c := 0; c < consumers; c++ {
		go func(c int) {
			defer cons.Done()
			var s uint64
			for v := range ch {
				s += uint64(v)
			}
			sums[c] = s
		}(c)
	}
	for p := 0; p < producers; p++ {
		go func() {
			defer prod.Done()
			for i := 0; i < per; i++ {
				ch <- i
			}
		}()
	}
	prod.Wait()
	close(ch)
	cons.Wait()
	for _, s := range sums {
		sink ^= s
	}
	return per * producers
}

// select4N: the calling goroutine runs n selects over 4 buffered channels
// (capacity 128), each kept full by its own producer goroutine; reported
// per select. Afterwards the producers are stopped and the channels drained
// (a few hundred receives, counted in the time but not in the units).
func select4N(n int) int {
	var c [4]chan int
	for i := range c {
		c[i] = make(chan int, chanCap)
	}
	var stop atomic.Bool
	var wg sync.WaitGroup
	wg.Add(len(c))
	for i := range c {
		go func(ch chan int) {
			defer wg.Done()
			for v := 0; !stop.Load(); v++ {
				ch <- v
			}
		}(c[i])
	}
	var s uint64
	for i := 0; i < n; i++ {
		select {
		case v := <-c[0]:
			s += uint64(v)
		case v := <-c[1]:
			s += uint64(v)
		case v := <-c[2]:
			s += uint64(v)
		case v := <-c[3]:
			s += uint64(v)
		}
	}
	stop.Store(true)
	exited := make(chan struct{})
	go func() { wg.Wait(); close(exited) }()
	for done := false; !done; {
		select {
		case <-c[0]:
		case <-c[1]:
		case <-c[2]:
		case <-c[3]:
		case <-exited:
			done = true
		}
	}
	sink ^= s
	return n
}
