// The Go net/http hello-world of the benchmark (run with GOMAXPROCS=1).
//
// Routes: "/" (Hello, World!), "/64k", "/post" (answers the body length) and "/static/"
// (http.FileServer over -www). Prints "ready" once listening. Built by tools/bench/run.py.
package main

import (
	"bytes"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strconv"
	"time"
)

func main() {
	port := flag.Int("port", 8080, "port on 127.0.0.1")
	www := flag.String("www", ".", "directory holding static/")
	flag.Parse()
	hello := []byte("Hello, World!")
	big := bytes.Repeat([]byte("x"), 65536)
	mux := http.NewServeMux()
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/" {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", "text/plain")
		w.Write(hello)
	})
	mux.HandleFunc("/post", func(w http.ResponseWriter, r *http.Request) {
		n, _ := io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "text/plain")
		w.Write([]byte(strconv.FormatInt(n, 10)))
	})
	mux.HandleFunc("/64k", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/octet-stream")
		w.Header().Set("Content-Length", "65536")
		w.Write(big)
	})
	mux.Handle("/static/", http.FileServer(http.Dir(*www)))
	ln, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", *port))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	fmt.Println("ready")
	srv := &http.Server{Handler: mux, IdleTimeout: 600 * time.Second}
	if err := srv.Serve(ln); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}
