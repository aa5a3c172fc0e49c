// SPDX-License-Identifier: MIT

// Description: a cgo program that used the library gets process-directed signals while goroutines run, and survives them.
//
// The Go runtime installs its handlers (with SA_ONSTACK) before main; the
// library, at its first call, installs its own for the interrupt signal
// and chains Go's.  A process-directed signal then lands on any thread,
// usually one running Go code on a goroutine stack: the library's handler
// must run on the thread's signal stack, and so must Go's behind it, or
// the runtime aborts ("non-Go code set up signal handler without
// SA_ONSTACK flag").
//
// usage: gosignals SIGNO COUNT; prints one line and exits 0 when every
// check passed, 1 when one failed (the runtime's abort exits 2).
package main

/*
#include <errno.h>
#include <stdint.h>
#include <interruptible.h>

static void *sleeper(intr_ctx *ctx, void *arg)
{
	(void)arg;
	return (void *)(intptr_t)intr_sleep(ctx, 10000000000ull);
}

// One call, ended by a 20 ms deadline: the library is installed.
static int one_call(void)
{
	intr_token *tok;
	void *res = 0;
	int ret;

	if (intr_token_new(&tok, 0))
		return -1000;
	intr_token_cancel_after(tok, 20000000u);
	ret = run_interruptible(tok, sleeper, 0, &res);
	intr_token_free(tok);
	return ret;
}
*/
import "C"

import (
	"fmt"
	"os"
	"os/signal"
	"runtime"
	"strconv"
	"sync/atomic"
	"syscall"
	"time"
)

var sink uint64

// Go code on a goroutine stack, calling small functions, until told.
func spin(stop *int32) {
	var x uint64
	for atomic.LoadInt32(stop) == 0 {
		x = mix(x)
	}
	atomic.AddUint64(&sink, x)
}

//go:noinline
func mix(x uint64) uint64 {
	return x*6364136223846793005 + 1442695040888963407
}

func main() {
	if len(os.Args) != 3 {
		fmt.Println("usage: gosignals SIGNO COUNT")
		os.Exit(1)
	}
	signo, err1 := strconv.Atoi(os.Args[1])
	count, err2 := strconv.Atoi(os.Args[2])
	if err1 != nil || err2 != nil || signo <= 0 || count <= 0 {
		fmt.Println("usage: gosignals SIGNO COUNT")
		os.Exit(1)
	}
	sig := syscall.Signal(signo)
	ch := make(chan os.Signal, 64)
	signal.Notify(ch, sig)

	if r := C.one_call(); r != -C.ETIMEDOUT {
		fmt.Printf("the library's call returned %d, not -ETIMEDOUT\n", r)
		os.Exit(1)
	}

	var stop int32
	n := runtime.GOMAXPROCS(0) + 2
	for i := 0; i < n; i++ {
		go spin(&stop)
	}
	var got int64
	done := make(chan struct{})
	go func() {
		for range ch {
			atomic.AddInt64(&got, 1)
		}
		close(done)
	}()
	pid := os.Getpid()
	for i := 0; i < count; i++ {
		if err := syscall.Kill(pid, sig); err != nil {
			fmt.Println("kill:", err)
			os.Exit(1)
		}
		time.Sleep(200 * time.Microsecond)
	}
	// Classic signals coalesce, and so does Go's own queue: at least
	// one must arrive; wait for it with a bound.
	deadline := time.Now().Add(5 * time.Second)
	for atomic.LoadInt64(&got) == 0 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	atomic.StoreInt32(&stop, 1)
	if r := C.one_call(); r != -C.ETIMEDOUT {
		fmt.Printf("the second call returned %d, not -ETIMEDOUT\n", r)
		os.Exit(1)
	}
	g := atomic.LoadInt64(&got)
	fmt.Printf("%d signals sent, %d reached signal.Notify, %d goroutines spinning\n", count, g, n)
	if g == 0 {
		os.Exit(1)
	}
}
