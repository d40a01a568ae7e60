// Command bare is the baseline of the start-up benchmark: a plain Go HTTP
// server that answers every request with 200.
package main

import (
	"net/http"
	"os"
)

func main() {
	addr := os.Getenv("LISTEN_ADDRESS")
	_ = http.ListenAndServe(addr, http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.WriteHeader(http.StatusOK)
	}))
}
