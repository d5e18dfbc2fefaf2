package httpapi_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"

	"github.com/connkit/connkit/connection"
	"github.com/connkit/connkit/connection/httpapi"
	"github.com/connkit/connkit/connector/connectortest"
	"github.com/connkit/connkit/registry"
	"github.com/connkit/connkit/store/memory"
)

// Mount the API under /api/ of an existing mux.
func ExampleNew() {
	reg := &registry.Registry{}
	reg.Register("fake", connectortest.NewFake())
	m, _ := connection.New(context.Background(), memory.New(), &connection.Options{Registry: reg})
	defer m.Close()

	mux := http.NewServeMux()
	mux.Handle("/api/", http.StripPrefix("/api", httpapi.New(m, nil)))
	srv := httptest.NewServer(mux)
	defer srv.Close()

	res, _ := http.Post(srv.URL+"/api/connections", "application/json",
		strings.NewReader(`{"id":"bus","typ":"fake","props":{"adr":"x"}}`))
	body, _ := io.ReadAll(res.Body)
	res.Body.Close()
	fmt.Println(res.StatusCode, strings.TrimSpace(string(body)))
	// Output:
	// 400 {"type":"urn:connkit:problem:invalid_argument","title":"Invalid argument","status":400,"detail":"invalid connection: addr: required: give a string; adr: unknown property; the known ones are addr, password, url, header, mode, retries","code":"invalid_argument","error":"invalid connection: addr: required: give a string; adr: unknown property; the known ones are addr, password, url, header, mode, retries","fields":[{"field":"addr","message":"required: give a string"},{"field":"adr","message":"unknown property; the known ones are addr, password, url, header, mode, retries"}]}
}

// Let the pages of another origin (a console of your own) change
// connections through a browser; the page at /ui/ needs nothing.
func ExampleOptions_crossOrigin() {
	reg := &registry.Registry{}
	reg.Register("fake", connectortest.NewFake())
	m, _ := connection.New(context.Background(), memory.New(), &connection.Options{Registry: reg})
	defer m.Close()

	co := http.NewCrossOriginProtection()
	if err := co.AddTrustedOrigin("https://console.example.com"); err != nil {
		panic(err)
	}
	srv := httptest.NewServer(httpapi.New(m, &httpapi.Options{CrossOrigin: co}))
	defer srv.Close()

	for _, origin := range []string{"https://console.example.com", "https://elsewhere.example"} {
		req, _ := http.NewRequest("POST", srv.URL+"/connections", strings.NewReader(`{"id":"bus","typ":"fake","props":{"addr":"x"}}`))
		req.Header.Set("Origin", origin)
		req.Header.Set("Sec-Fetch-Site", "cross-site")
		res, _ := http.DefaultClient.Do(req)
		res.Body.Close()
		fmt.Println(origin, res.StatusCode)
	}
	// Output:
	// https://console.example.com 201
	// https://elsewhere.example 403
}
