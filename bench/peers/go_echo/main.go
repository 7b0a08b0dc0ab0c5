// Command go_echo is a goroutine-per-connection TCP echo server, the Go
// peer of Spindle's echo server in bench/run_echo_bench.sh.
//
// Each accepted connection gets a goroutine that reads into its own 4 KiB
// buffer and writes back what it read until EOF. (An explicit loop rather
// than io.Copy: io.Copy between TCP connections would splice through a
// pipe on Linux.) Go sets TCP_NODELAY on its connections by default.
// GOMAXPROCS comes from the environment. Listens on 127.0.0.1.
// Usage: go_echo -port PORT; prints "listening PORT".
package main

import (
	"flag"
	"fmt"
	"log"
	"net"
	"os"
	"strconv"
)

func serve(c net.Conn) {
	defer c.Close()
	buf := make([]byte, 4096)
	for {
		n, err := c.Read(buf)
		if n > 0 {
			if _, werr := c.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

func main() {
	port := flag.Int("port", 9000, "TCP port to listen on (127.0.0.1)")
	flag.Parse()
	ln, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(*port)))
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("listening %d\n", *port)
	os.Stdout.Sync()
	for {
		c, err := ln.Accept()
		if err != nil {
			log.Print(err)
			continue
		}
		go serve(c)
	}
}
