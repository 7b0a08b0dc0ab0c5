// Command go_http is the Go net/http peer of Spindle's HTTP sample
// (samples/http) in bench/run_http_bench.sh.
//
// GET / answers "Hello, World!\n" with Content-Type: text/plain and
// Content-Length: 14 (net/http adds Date); every other path is served from
// the -root directory by http.FileServer (which sends file bodies with
// sendfile, and adds Last-Modified and Accept-Ranges). Standard library
// only, default http.Server settings (keep-alive, no timeouts), a goroutine
// per connection; GOMAXPROCS comes from the environment (the script sets 2).
// Listens on 127.0.0.1.
// Usage: go_http -port PORT -root DIR; prints "listening PORT".
package main

import (
	"flag"
	"fmt"
	"log"
	"net"
	"net/http"
	"os"
	"strconv"
)

var hello = []byte("Hello, World!\n")

func main() {
	port := flag.Int("port", 8080, "TCP port to listen on (127.0.0.1)")
	root := flag.String("root", ".", "directory served for paths other than /")
	flag.Parse()
	files := http.FileServer(http.Dir(*root))
	handler := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/" {
			files.ServeHTTP(w, r)
			return
		}
		h := w.Header()
		h["Content-Type"] = []string{"text/plain"}
		h["Content-Length"] = []string{"14"}
		w.Write(hello)
	})
	ln, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(*port)))
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("listening %d\n", *port)
	os.Stdout.Sync()
	log.Fatal((&http.Server{Handler: handler}).Serve(ln))
}
