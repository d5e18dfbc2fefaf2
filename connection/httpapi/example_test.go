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
