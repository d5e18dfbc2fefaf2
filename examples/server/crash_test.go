package main

import (
	"database/sql"
	"encoding/json"
	"fmt"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	_ "github.com/mattn/go-sqlite3"
)

// TestSIGKILLMidBurst: clients create connections without pause; the
// server is SIGKILLed in the middle; after a restart every acknowledged
// create is there and the database is intact.
func TestSIGKILLMidBurst(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the server binary")
	}
	bin := buildServer(t)
	db := filepath.Join(t.TempDir(), "connkit.db")
	p := start(t, bin, db)

	var mu sync.Mutex
	var acked []string
	var wg sync.WaitGroup
	client := &http.Client{Timeout: 5 * time.Second}
	for w := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				id := fmt.Sprintf("w%d-%d", w, i)
				body := `{"id":"` + id + `","typ":"nng","props":{"url":"tcp://127.0.0.1:1","protocol":"push"}}`
				res, err := client.Post(p.url+"/connections", "application/json", strings.NewReader(body))
				if err != nil {
					return // the server is gone
				}
				res.Body.Close()
				if res.StatusCode == 201 {
					mu.Lock()
					acked = append(acked, id)
					mu.Unlock()
				}
			}
		}()
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		mu.Lock()
		n := len(acked)
		mu.Unlock()
		if n >= 300 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("only %d creates acknowledged", n)
		}
		time.Sleep(time.Millisecond)
	}
	if err := p.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	p.cmd.Wait()
	wg.Wait()

	// The file opens cleanly and is consistent.
	raw, err := sql.Open("sqlite3", "file:"+db+"?mode=ro")
	if err != nil {
		t.Fatal(err)
	}
	var integrity string
	if err := raw.QueryRow(`PRAGMA integrity_check`).Scan(&integrity); err != nil || integrity != "ok" {
		t.Errorf("integrity_check: %q %v", integrity, err)
	}
	raw.Close()

	p = start(t, bin, db)
	res, err := http.Get(p.url + "/connections")
	if err != nil {
		t.Fatal(err)
	}
	var list []struct {
		ID      string `json:"id"`
		Version int64  `json:"version"`
	}
	json.NewDecoder(res.Body).Decode(&list)
	res.Body.Close()
	have := map[string]bool{}
	for _, c := range list {
		have[c.ID] = c.Version == 1
	}
	for _, id := range acked {
		if !have[id] {
			t.Errorf("acknowledged create %s is lost", id)
		}
	}
	t.Logf("%d creates acknowledged before the SIGKILL, %d stored after it", len(acked), len(list))
}
