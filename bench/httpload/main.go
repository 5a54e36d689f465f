// httpload: the HTTP client of bench/network.py. CONNS goroutines each GET one URL in a loop
// for DURATION, on a kept-alive connection (or, with -close, a new connection per request,
// which the client resets: no side keeps a TIME_WAIT, so tens of thousands of connections do
// not exhaust the client's ephemeral ports), and one JSON line reports the count:
// {"requests": N, "errors": E, "seconds": S}.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"io"
	"net"
	"net/http"
	"os"
	"sync"
	"sync/atomic"
	"time"
)

var closeEach = flag.Bool("close", false, "a new connection for every request")

// dial connects; with -close the connection is reset when closed (SO_LINGER 0).
func dial(ctx context.Context, network, addr string) (net.Conn, error) {
	conn, err := (&net.Dialer{}).DialContext(ctx, network, addr)
	if err == nil && *closeEach {
		err = conn.(*net.TCPConn).SetLinger(0)
	}
	return conn, err
}

func main() {
	url := flag.String("url", "http://127.0.0.1:8080/", "the URL to GET")
	conns := flag.Int("c", 8, "concurrent connections")
	duration := flag.Duration("d", 3*time.Second, "how long to run")
	flag.Parse()

	var requests, errors int64
	deadline := time.Now().Add(*duration)
	start := time.Now()
	var wg sync.WaitGroup
	for i := 0; i < *conns; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			transport := &http.Transport{MaxIdleConnsPerHost: 1, DialContext: dial}
			client := &http.Client{Transport: transport, Timeout: 5 * time.Second}
			for time.Now().Before(deadline) {
				resp, err := client.Get(*url)
				if err == nil {
					_, err = io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
				}
				if *closeEach {
					transport.CloseIdleConnections()
				}
				if err != nil || resp.StatusCode != http.StatusOK {
					atomic.AddInt64(&errors, 1)
					continue
				}
				atomic.AddInt64(&requests, 1)
			}
		}()
	}
	wg.Wait()
	json.NewEncoder(os.Stdout).Encode(map[string]any{
		"requests": requests, "errors": errors, "seconds": time.Since(start).Seconds(),
	})
}
