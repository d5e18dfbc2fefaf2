// Command server is the connkit REST server: every built-in connection
// type, stored in an embedded SQLite file, or on etcd for several
// instances that share one set of connections.
//
//	go run ./examples/server                  # 127.0.0.1:9081, ./connkit.db
//	go run ./examples/server -addr 127.0.0.1:8080 -db /var/lib/connkit/connkit.db
//	go run ./examples/server -store etcd://10.0.0.1:2379,10.0.0.2:2379/connkit -instance edge-1
//	go run ./examples/server -deny-dial loopback,private,link-local -file-root /var/lib/connkit/data
//	go run ./examples/server -secret-dir /run/secrets -secret-bind file:prod/=10.1.0.0/16
//
// What a user of the API can make the server do on its host is bounded by
// flags: -deny-dial and -allow-dial bound every dial of connections and
// checks alike, -listen-allow the addresses listeners bind (never a port
// below 1024), -file-root the directory of SQLite connections (the
// database of the server itself is never one), -max-connections their
// number. Secret references read the environment variables -secret-env
// allows and the files under -secret-dir (none by default), never the
// server's own database, key, provisioning file or log;
// -secret-bind holds a reference to the networks its secret may go to.
// -trusted-origin names the origins of pages other than /ui/ that
// may change connections through a browser; -allowed-hosts the host names
// the server answers to (on loopback: IP addresses and localhost only,
// against DNS rebinding).
//
// It stops cleanly on SIGINT or SIGTERM: in-flight requests finish, every
// live connection is closed, and the database is closed.
package main

import (
	"context"
	"encoding/base64"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/connkit/connkit/connection"
	"github.com/connkit/connkit/connection/httpapi"
	"github.com/connkit/connkit/connection/metrics"
	"github.com/connkit/connkit/connector"
	_ "github.com/connkit/connkit/connector/all"
	"github.com/connkit/connkit/store"
	"github.com/connkit/connkit/store/etcd"
	"github.com/connkit/connkit/store/sqlite"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:9081", "address to serve the REST API on")
	db := flag.String("db", "connkit.db", "path of the SQLite database that stores the connections")
	keyFile := flag.String("secret-key-file", "", "file holding a base64 AES key (16, 24 or 32 bytes) that encrypts secret props at rest")
	denyDial := flag.String("deny-dial", "", "comma-separated kinds of address no connection or check may dial: loopback, private, link-local, or CIDRs")
	allowDial := flag.String("allow-dial", "", "comma-separated CIDRs: the only networks connections and checks may dial")
	listenAllow := flag.String("listen-allow", "", "comma-separated CIDRs: the only addresses listeners may bind (0.0.0.0/32 for all); ports below 1024 never")
	fileRoot := flag.String("file-root", ".", "directory that SQLite connections' files must lie in")
	maxConns := flag.Int("max-connections", 10000, "the most connections that may exist")
	storeURL := flag.String("store", "", "etcd://HOST:PORT[,HOST:PORT...]/PREFIX to keep the connections on etcd, shared with other instances (default: the SQLite file of -db)")
	instance := flag.String("instance", "", "this instance's name in the refs it publishes on etcd (default: host name and a random suffix)")
	secretEnv := flag.String("secret-env", "CONNKIT_SECRET_", "comma-separated prefixes of the environment variables that ${env:NAME} secret references may read (\"\" for all)")
	provisionFile := flag.String("provision", "", "JSON or YAML file of connections to apply at start, as PUT /connections does; secrets may be ${env:NAME} or ${file:PATH}")
	secretDir := flag.String("secret-dir", "", "directory of the files that ${file:PATH} secret references may read (PATH from it); default none: file references are off. The server's own files are never read")
	var binds bindings
	flag.Var(&binds, "secret-bind", "REF=CIDR[,CIDR...][:PORT]: a connection or check that reads a secret reference starting with REF (env:NAME_PREFIX or file:PATH_PREFIX) dials only those networks; repeat for more")
	allowedHosts := flag.String("allowed-hosts", "", "comma-separated host names the server answers to, beside IP addresses and localhost; on loopback (the default) no other, elsewhere any unless this names some")
	trusted := flag.String("trusted-origin", "", "comma-separated origins (https://console.example.com) whose pages may change connections through a browser, beside the page at /ui/ itself; needed behind a proxy that rewrites Host")
	flag.Parse()
	log := slog.New(slog.NewTextHandler(os.Stderr, nil))
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	key, err := readKey(*keyFile)
	if err != nil {
		log.Error("secret key", "err", err)
		os.Exit(2)
	}
	policy, err := buildPolicy(*denyDial, *allowDial, *listenAllow, *fileRoot, *db)
	if err != nil {
		log.Error("policy flags", "err", err)
		os.Exit(2)
	}
	// The server's own files are no connection's and no secret's.
	own := []string{*db}
	for _, f := range []string{*keyFile, *provisionFile} {
		if f != "" {
			own = append(own, f)
		}
	}
	policy.Files.Deny = own
	if *secretDir != "" {
		if err := apart(*secretDir, *fileRoot); err != nil {
			log.Error("secret directory", "err", err)
			os.Exit(2)
		}
		policy.SecretFiles = &connector.FilePolicy{Root: *secretDir, Deny: own}
	}
	policy.Bind = binds
	policy.Env = &connector.EnvPolicy{Prefixes: split(*secretEnv)}
	if *secretEnv == "" {
		policy.Env.Prefixes = []string{""}
	}
	crossOrigin, err := trustOrigins(*trusted)
	if err != nil {
		log.Error("trusted origins", "err", err)
		os.Exit(2)
	}
	if err := run(ctx, *addr, *db, config{url: *storeURL, instance: *instance, provision: *provisionFile, hosts: split(*allowedHosts)},
		&connection.Options{Logger: log, SecretKey: key, Policy: policy, MaxConnections: *maxConns},
		&httpapi.Options{Logger: log, CrossOrigin: crossOrigin}); err != nil {
		log.Error("connkit server failed", "err", err)
		os.Exit(1)
	}
}

// trustOrigins is the cross-origin protection of the API, trusting the
// origins of list.
func trustOrigins(list string) (*http.CrossOriginProtection, error) {
	co := http.NewCrossOriginProtection()
	for _, o := range split(list) {
		// As copied from an address bar.
		if err := co.AddTrustedOrigin(strings.TrimSuffix(o, "/")); err != nil {
			return nil, fmt.Errorf("-trusted-origin %q: give scheme://host[:port], such as https://console.example.com", o)
		}
	}
	return co, nil
}

// readKey reads a base64 key from path; no path means no encryption.
func readKey(path string) ([]byte, error) {
	if path == "" {
		return nil, nil
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	key, err := base64.StdEncoding.DecodeString(strings.TrimSpace(string(b)))
	if err != nil {
		return nil, fmt.Errorf("%s: not base64: %v (make one with: head -c 32 /dev/urandom | base64)", path, err)
	}
	return key, nil
}

// buildPolicy reads the policy flags. The store's database and its side
// files are denied to connections.
func buildPolicy(denyDial, allowDial, listenAllow, fileRoot, db string) (*connector.Policy, error) {
	dial := &connector.DialPolicy{}
	for _, k := range split(denyDial) {
		switch k {
		case "loopback":
			dial.DenyLoopback = true
		case "private":
			dial.DenyPrivate = true
		case "link-local":
			dial.DenyLinkLocal = true
		default:
			p, err := netip.ParsePrefix(k)
			if err != nil {
				return nil, fmt.Errorf("-deny-dial %q: give loopback, private, link-local or a CIDR", k)
			}
			dial.Deny = append(dial.Deny, p)
		}
	}
	var err error
	if dial.Allow, err = prefixes("-allow-dial", allowDial); err != nil {
		return nil, err
	}
	listen := &connector.ListenPolicy{MinPort: 1024}
	if listen.Allow, err = prefixes("-listen-allow", listenAllow); err != nil {
		return nil, err
	}
	return &connector.Policy{Dial: dial, Listen: listen, Files: &connector.FilePolicy{Root: fileRoot, Deny: []string{db}}}, nil
}

// apart refuses a secret directory that is the directory of SQLite
// connections' files, or holds it, or lies in it: a writer could make a
// connection's file hold what a reference then sends away.
func apart(secrets, files string) error {
	a, err := connector.RealPath(secrets)
	if err != nil {
		return err
	}
	b, err := connector.RealPath(files)
	if err != nil {
		return err
	}
	within := func(x, y string) bool {
		rel, err := filepath.Rel(y, x)
		return err == nil && rel != ".." && !strings.HasPrefix(rel, ".."+string(filepath.Separator))
	}
	if within(a, b) || within(b, a) {
		return fmt.Errorf("-secret-dir %s and -file-root %s overlap: give the secrets a directory of their own", secrets, files)
	}
	return nil
}

// bindings is the -secret-bind flag: REF=CIDR[,CIDR...][:PORT], repeated.
type bindings []connector.SecretBinding

func (b *bindings) String() string { return fmt.Sprint(len(*b), " bindings") }

func (b *bindings) Set(v string) error {
	ref, nets, ok := strings.Cut(v, "=")
	if !ok || (!strings.HasPrefix(ref, "env:") && !strings.HasPrefix(ref, "file:")) {
		return fmt.Errorf("give REF=CIDR[,CIDR...][:PORT], REF starting with env: or file:, such as env:CONNKIT_SECRET_PROD_=10.1.0.0/16")
	}
	if rest, ok := strings.CutPrefix(ref, "file:"); ok {
		// As Resolve names a file: its path under -secret-dir.
		clean := filepath.ToSlash(filepath.Clean(rest))
		if strings.HasSuffix(rest, "/") {
			clean += "/"
		}
		if rest == "" || filepath.IsAbs(rest) || clean != rest || strings.HasPrefix(clean, "../") {
			return fmt.Errorf("%s: give the path as it lies under -secret-dir, such as file:prod/ (no leading / or ./, no ..)", ref)
		}
	}
	var d connector.DialPolicy
	if i := strings.LastIndex(nets, ":"); i >= 0 && !strings.Contains(nets[i:], "/") {
		port, err := strconv.ParseUint(nets[i+1:], 10, 16)
		if err != nil {
			return fmt.Errorf("port %q: give a number", nets[i+1:])
		}
		d.Ports, nets = []uint16{uint16(port)}, nets[:i]
	}
	var err error
	if d.Allow, err = prefixes("-secret-bind", nets); err != nil {
		return err
	}
	if len(d.Allow) == 0 {
		return fmt.Errorf("%s: give the networks its secrets may go to", ref)
	}
	*b = append(*b, connector.SecretBinding{Ref: ref, Dial: d})
	return nil
}

func split(s string) []string {
	var out []string
	for _, f := range strings.Split(s, ",") {
		if f = strings.TrimSpace(f); f != "" {
			out = append(out, f)
		}
	}
	return out
}

func prefixes(flag, s string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for _, f := range split(s) {
		p, err := netip.ParsePrefix(f)
		if err != nil {
			return nil, fmt.Errorf("%s %q: give CIDRs such as 10.0.0.0/8", flag, f)
		}
		out = append(out, p)
	}
	return out, nil
}

// config is what the flags say beside the Manager's and the handler's
// options: where the connections are kept (url "" is the SQLite file),
// which file, if any, declares them at start, and the host names the
// server answers to.
type config struct {
	url, instance, provision string
	hosts                    []string
}

// openStore opens the store sc names, or the SQLite file at dbPath, and
// says which for the log.
func openStore(ctx context.Context, sc config, dbPath string, log *slog.Logger) (store.Store, string, error) {
	if sc.url == "" {
		st, err := sqlite.Open(ctx, dbPath)
		return st, dbPath, err
	}
	rest, ok := strings.CutPrefix(sc.url, "etcd://")
	hosts, prefix, _ := strings.Cut(rest, "/")
	const form = "give etcd://HOST:PORT[,HOST:PORT...]/PREFIX, with a PREFIX of letters, digits, - _ . and /"
	if !ok || hosts == "" || strings.Contains(hosts, "@") {
		// The URL is not echoed: it may hold credentials.
		return nil, "", fmt.Errorf("-store: %s", form)
	}
	if strings.Trim(prefix, "/") == "" || strings.ContainsFunc(prefix, func(r rune) bool {
		return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("-_./", r))
	}) {
		return nil, "", fmt.Errorf("-store: etcd prefix %q: %s (a prefix keeps these connections apart from anything else in etcd)", prefix, form)
	}
	eps := strings.Split(hosts, ",")
	for _, ep := range eps {
		if _, _, err := net.SplitHostPort(ep); err != nil {
			return nil, "", fmt.Errorf("-store: etcd member %q: give HOST:PORT", ep)
		}
	}
	st, err := etcd.Open(ctx, eps, &etcd.Options{Prefix: "/" + prefix, Instance: sc.instance, Logger: log})
	if err != nil {
		return nil, "", err
	}
	return st, sc.url + " as " + st.Instance(), nil
}

func run(ctx context.Context, addr, dbPath string, sc config, opts *connection.Options, apiOpts *httpapi.Options) error {
	log := opts.Logger
	st, where, err := openStore(ctx, sc, dbPath, log)
	if err != nil {
		return err
	}
	defer st.Close()
	m, err := connection.New(ctx, st, opts)
	if err != nil {
		if strings.Contains(err.Error(), "SecretKey") {
			return fmt.Errorf("%w (the server takes it with -secret-key-file)", err)
		}
		return err
	}
	defer m.Close()
	if sc.provision != "" {
		if err := provision(ctx, m, sc.provision, log); err != nil {
			return err
		}
	}

	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("listen on %s: %w (use -addr to pick another)", addr, err)
	}
	api := httpapi.New(m, apiOpts)
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	if _, err := metrics.Register(reg, m); err != nil {
		return err
	}
	// Not a ServeMux: it would answer a path with . or .. segments with an
	// HTML redirect; the API answers every path in JSON.
	metrics := promhttp.HandlerFor(reg, promhttp.HandlerOpts{})
	mux := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/metrics" {
			metrics.ServeHTTP(w, r)
			return
		}
		api.ServeHTTP(w, r)
	})
	srv := &http.Server{
		Handler:           guardHosts(mux, ln.Addr(), sc.hosts),
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		IdleTimeout:       2 * time.Minute,
	}
	// Shutdown waits for requests to end; event streams end only when told.
	srv.RegisterOnShutdown(api.CloseStreams)
	log.Info("connkit serving", "addr", "http://"+ln.Addr().String(), "store", where, "connections", len(m.List()))
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	log.Info("connkit shutting down")
	sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		return fmt.Errorf("shutdown: %w", err)
	}
	if err := <-errc; !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}
