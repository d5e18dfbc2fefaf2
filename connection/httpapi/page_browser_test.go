package httpapi_test

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/google/go-cmp/cmp"

	"github.com/connkit/connkit/connection"
	"github.com/connkit/connkit/connection/httpapi"
	"github.com/connkit/connkit/connection/httpapi/ui/uitest"
	"github.com/connkit/connkit/connector"
	"github.com/connkit/connkit/connector/connectortest"
	"github.com/connkit/connkit/registry"
	"github.com/connkit/connkit/store/memory"
)

// pageServer serves the API and its page over every built-in type, with
// one MQTT connection m1 on a private real mosquitto, its password
// secret, connected.
func pageServer(t *testing.T) (*connection.Manager, string, *connectortest.Broker) {
	t.Helper()
	b := connectortest.NewBroker(t)
	b.Start()
	m, url := servePage(t, registry.Default)
	ctx := context.Background()
	if _, err := m.Create(ctx, connection.Spec{ID: "m1", Type: "mqtt", Props: map[string]any{
		"server": "tcp://" + b.Addr(), "password": pagePassword, "keepAlive": 20}}); err != nil {
		t.Fatal(err)
	}
	if err := m.WaitConnected(ctx, "m1"); err != nil {
		t.Fatal(err)
	}
	return m, url, b
}

const pagePassword = "pw-7Hq-stays-on-the-server"

// servePage serves the API and its page of a Manager over reg.
func servePage(t testing.TB, reg *registry.Registry) (*connection.Manager, string) {
	t.Helper()
	m, err := connection.New(context.Background(), memory.New(), &connection.Options{Registry: reg, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	h := httpapi.New(m, nil)
	ts := httptest.NewServer(h)
	t.Cleanup(func() {
		h.CloseStreams()
		ts.Close()
		m.Close()
	})
	return m, ts.URL
}

// TestPageOperations drives the page in a real browser through what an
// operator does beyond creating: a delete that rules hold shows their
// refs, an edit that lost a race offers a reload, checks show their
// steps and where one failed, a reconnect, the history, and map props
// with secret keys. Values users stored stay text, never markup.
func TestPageOperations(t *testing.T) {
	m, url, b := pageServer(t)
	ctx := context.Background()
	// A ref name is free text from an engine: it must show as text.
	const hostile = `<img src=x onerror="window.pwned=1">`
	if _, err := m.Attach(ctx, "m1", "rule1/source"); err != nil {
		t.Fatal(err)
	}
	if _, err := m.Attach(ctx, "m1", hostile); err != nil {
		t.Fatal(err)
	}
	br := uitest.New(t)
	row := `tr[data-id="m1"] `
	br.Do(15*time.Second, "open the page",
		chromedp.Navigate(url+"/ui/"),
		chromedp.WaitVisible(chromedp.CSS(`#stream[data-state="live"]`)),
		chromedp.WaitVisible(chromedp.CSS(row+`[data-status="connected"]`)),
		chromedp.Click(chromedp.CSS(row+`.refs summary`)),
		chromedp.WaitVisible(chromedp.CSS(row+`.refs li`)))
	refs := uitest.Eval[string](br, `document.querySelector('tr[data-id="m1"] .refs ul').textContent`)
	if !strings.Contains(refs, "rule1/source") || !strings.Contains(refs, hostile) {
		t.Errorf("the refs show %q", refs)
	}

	// Delete: asks first; refused while held, it shows the refs.
	br.Do(10*time.Second, "delete m1 while rules hold it",
		chromedp.Click(chromedp.CSS(row+`button[data-action="delete"]`)),
		chromedp.WaitVisible(chromedp.ID("confirm-yes")),
		chromedp.Click(chromedp.ID("confirm-yes")),
		chromedp.WaitVisible(chromedp.CSS(`#confirm-body .refs-list`)))
	if got := uitest.Eval[string](br, `document.getElementById('confirm-body').textContent`); !strings.Contains(got, "rule1/source") || !strings.Contains(got, hostile) {
		t.Errorf("the refused delete says %q", got)
	}
	if _, err := m.Get("m1"); err != nil {
		t.Fatalf("m1 after a refused delete: %v", err)
	}
	br.Do(5*time.Second, "close the refusal",
		chromedp.Click(chromedp.ID("confirm-no")),
		chromedp.WaitNotVisible(chromedp.ID("confirm")))
	m.Detach("m1", "rule1/source")
	m.Detach("m1", hostile)
	br.Do(5*time.Second, "see the refs go, live",
		chromedp.WaitVisible(chromedp.CSS(row+`.refs:not(:has(details))`)))

	// Edit while another client changes it: a conflict, then a reload
	// that shows the other change.
	br.Do(10*time.Second, "open m1's form",
		chromedp.Click(chromedp.CSS(row+`button[data-action="edit"]`)),
		chromedp.WaitVisible(chromedp.ID("p-keepAlive")))
	if v := uitest.Eval[string](br, `document.getElementById('p-keepAlive').value`); v != "20" {
		t.Fatalf("keepAlive in the form: %q", v)
	}
	if _, err := m.Update(ctx, connection.Spec{ID: "m1", Type: "mqtt", Props: map[string]any{
		"server": "tcp://" + b.Addr(), "password": pagePassword, "keepAlive": 45}}, connection.Tag{}); err != nil {
		t.Fatal(err)
	}
	br.Do(10*time.Second, "save over the other change",
		uitest.SetValue("p-keepAlive", "60"),
		chromedp.Click(chromedp.ID("f-save")),
		chromedp.WaitVisible(chromedp.ID("f-reload")))
	if got := uitest.Eval[string](br, `document.getElementById('form-error').textContent`); !strings.Contains(got, "Someone else changed") {
		t.Errorf("the conflict says %q", got)
	}
	br.Do(10*time.Second, "reload it",
		chromedp.Click(chromedp.ID("f-reload")),
		chromedp.WaitNotVisible(chromedp.ID("form-error")))
	if v := uitest.Eval[string](br, `document.getElementById('p-keepAlive').value`); v != "45" {
		t.Errorf("keepAlive after the reload: %q, want the other client's 45", v)
	}
	// Check the form as it stands: the stored secret stands behind the
	// mask, and the steps show.
	br.Do(10*time.Second, "check the edit before saving",
		chromedp.Click(chromedp.ID("f-check")),
		chromedp.WaitVisible(chromedp.CSS(`#f-check-result .ok-line`)),
		chromedp.WaitVisible(chromedp.CSS(`#f-check-result .steps li.ok`)))
	br.Do(10*time.Second, "save the edit",
		uitest.SetValue("p-keepAlive", "60"),
		chromedp.Click(chromedp.ID("f-save")),
		chromedp.WaitNotVisible(chromedp.ID("edit")),
		chromedp.WaitVisible(chromedp.CSS(row+`[data-status="connected"]`)))
	if in, _ := m.Get("m1"); fmt.Sprint(in.Props["keepAlive"]) != "60" {
		t.Errorf("keepAlive stored: %v", in.Props["keepAlive"])
	}

	// A check of a new form that fails shows the step it failed at.
	br.Do(10*time.Second, "check a form that cannot connect",
		chromedp.Click(chromedp.ID("new")),
		chromedp.WaitVisible(chromedp.ID("f-id")),
		uitest.Choose("f-typ", "mqtt"),
		chromedp.WaitVisible(chromedp.ID("p-server")),
		uitest.SetValue("p-server", "tcp://127.0.0.1:1"),
		chromedp.Click(chromedp.ID("f-check")),
		chromedp.WaitVisible(chromedp.CSS(`#f-check-result .fail-line`)),
		chromedp.WaitVisible(chromedp.CSS(`#f-check-result .steps li.fail`)))
	if got := uitest.Eval[string](br, `document.querySelector('#f-check-result .steps li.fail').textContent`); !strings.Contains(got, "connect") || !strings.Contains(got, "refused") {
		t.Errorf("the failed step says %q", got)
	}
	// A map prop: key and value rows; the value of a secret key is a
	// password input.
	br.Do(10*time.Second, "fill a map prop",
		uitest.Choose("f-typ", "edgex"),
		chromedp.WaitVisible(chromedp.CSS(`fieldset[data-field="optional"] button.add`)),
		chromedp.Click(chromedp.CSS(`fieldset[data-field="optional"] button.add`)),
		chromedp.SendKeys(chromedp.CSS(`fieldset[data-field="optional"] .map-key`), "Password"))
	if typ := uitest.Eval[string](br, `document.querySelector('fieldset[data-field="optional"] .map-value').type`); typ != "password" {
		t.Errorf("the value of optional.Password is a %q input", typ)
	}
	br.Do(5*time.Second, "cancel the form",
		chromedp.Click(chromedp.ID("f-cancel")),
		chromedp.WaitNotVisible(chromedp.ID("edit")))

	// Check the stored connection, reconnect it, and read its history.
	br.Do(10*time.Second, "check m1 as stored",
		chromedp.Click(chromedp.CSS(row+`button[data-action="check"]`)),
		chromedp.WaitVisible(chromedp.CSS(`#info-body .ok-line`)),
		chromedp.WaitVisible(chromedp.CSS(`#info-body .steps li.ok`)),
		chromedp.Click(chromedp.ID("info-close")),
		chromedp.WaitNotVisible(chromedp.ID("info")))
	history := func() int {
		h, err := m.History("m1")
		if err != nil {
			t.Fatal(err)
		}
		return len(h)
	}
	before := history()
	br.Do(10*time.Second, "reconnect m1",
		chromedp.Click(chromedp.CSS(row+`button[data-action="reconnect"]`)),
		chromedp.WaitVisible(chromedp.CSS(`#notice:not(.bad)`)))
	connectortest.Eventually(t, "the reconnect in m1's history", func() bool { return history() > before })
	br.Do(10*time.Second, "read m1's history",
		chromedp.Click(chromedp.CSS(row+`button[data-action="history"]`)),
		chromedp.WaitVisible(chromedp.CSS(`#info-body table.history`)))
	rows := uitest.Eval[int](br, `document.querySelectorAll('#info-body table.history tbody tr').length`)
	if want := history(); rows < want-1 || rows == 0 {
		t.Errorf("the history shows %d changes; the Manager has %d", rows, want)
	}
	br.Do(5*time.Second, "close the history", chromedp.Click(chromedp.ID("info-close")))

	if uitest.Eval[bool](br, `window.pwned === 1`) {
		t.Fatal("a ref name ran as script")
	}
	if br.Has(pagePassword) {
		t.Fatal("the secret is in the page")
	}
	// The delete goes through once nothing holds it.
	br.Do(10*time.Second, "delete m1",
		chromedp.Click(chromedp.CSS(row+`button[data-action="delete"]`)),
		chromedp.WaitVisible(chromedp.ID("confirm-yes")),
		chromedp.Click(chromedp.ID("confirm-yes")),
		chromedp.WaitNotPresent(chromedp.CSS(`tr[data-id="m1"]`)))
	if _, err := m.Get("m1"); err == nil {
		t.Fatal("m1 is still stored")
	}
}

// TestPageAccessible: every input the form builds, for every type, has a
// label; the page is driven by the keyboard alone (open the form, fill
// it, save it, and get focus back); it has no horizontal scroll at
// 1280x800 nor on a phone, where the rows become cards.
func TestPageAccessible(t *testing.T) {
	m, url, b := pageServer(t)
	br := uitest.New(t)
	br.Do(15*time.Second, "open the page",
		chromedp.Navigate(url+"/ui/"),
		chromedp.WaitVisible(chromedp.CSS(`tr[data-id="m1"] [data-status="connected"]`)))

	unlabelled := `[...document.querySelectorAll('input,select,button')].filter(e =>
		e.offsetParent !== null && !(e.labels && e.labels.length) && !e.getAttribute('aria-label') && !e.textContent.trim()).map(e => e.outerHTML)`
	br.Do(10*time.Second, "open the form", chromedp.Click(chromedp.ID("new")), chromedp.WaitVisible(chromedp.ID("f-id")))
	types := uitest.Eval[[]string](br, `[...document.querySelectorAll('#f-typ option')].map(o => o.value).filter(Boolean)`)
	if len(types) < 6 {
		t.Fatalf("the form offers the types %v", types)
	}
	for _, typ := range types {
		br.Do(5*time.Second, "show "+typ+"'s props",
			uitest.Choose("f-typ", typ),
			chromedp.WaitVisible(chromedp.CSS(`#props .field, #props fieldset`)))
		// Give every map an entry, so that its inputs are there too.
		uitest.Eval[chromedp.Void](br, `document.querySelectorAll('#props button.add').forEach(b => b.click())`)
		if bad := uitest.Eval[[]string](br, unlabelled); len(bad) > 0 {
			t.Errorf("%s: inputs without a label: %v", typ, bad)
		}
	}
	br.Do(5*time.Second, "close with Escape",
		chromedp.KeyEvent("\x1b"), // Escape
		chromedp.WaitNotVisible(chromedp.ID("edit")))

	// The keyboard alone: focus the button, Enter opens the form with the
	// id focused, Tab moves on to the type, and Enter submits.
	uitest.Eval[chromedp.Void](br, `document.getElementById('new').focus()`)
	br.Do(10*time.Second, "open the form from the keyboard",
		chromedp.KeyEvent("\r"),
		chromedp.WaitVisible(chromedp.ID("f-id")))
	if id := uitest.Eval[string](br, `document.activeElement.id`); id != "f-id" {
		t.Fatalf("the form opened with %q focused, want f-id", id)
	}
	br.Do(10*time.Second, "fill the form from the keyboard",
		chromedp.KeyEvent("m2\t"),
		chromedp.KeyEvent("mqtt"),
		chromedp.WaitVisible(chromedp.ID("p-server")))
	if id := uitest.Eval[string](br, `document.activeElement.id`); id != "f-typ" {
		t.Fatalf("Tab from the id went to %q, want f-typ", id)
	}
	uitest.Eval[chromedp.Void](br, `document.getElementById('p-server').focus()`)
	br.Do(10*time.Second, "submit with Enter",
		chromedp.KeyEvent("tcp://"+b.Addr()+"\r"),
		chromedp.WaitNotVisible(chromedp.ID("edit")),
		chromedp.WaitVisible(chromedp.CSS(`tr[data-id="m2"] [data-status="connected"]`)))
	if in := uitest.Eval[string](br, `document.activeElement.closest('tr') ? document.activeElement.closest('tr').dataset.id : document.activeElement.id`); in != "m2" {
		t.Errorf("after saving, focus is on %q, want m2's row", in)
	}
	if _, err := m.Get("m2"); err != nil {
		t.Fatal(err)
	}

	noScroll := `document.documentElement.scrollWidth <= document.documentElement.clientWidth`
	if !uitest.Eval[bool](br, noScroll) {
		t.Error("the page scrolls sideways at 1280x800")
	}
	br.Do(5*time.Second, "a phone's screen", chromedp.EmulateViewport(375, 740))
	if !uitest.Eval[bool](br, noScroll) {
		t.Errorf("the page scrolls sideways at 375 px: %v wide", uitest.Eval[int](br, `document.documentElement.scrollWidth`))
	}
	if d := uitest.Eval[string](br, `getComputedStyle(document.querySelector('tr[data-id="m1"]')).display`); d != "block" {
		t.Errorf("at 375 px a row is displayed %q, want a card (block)", d)
	}
	// The filter hides the cards that do not match.
	br.Do(5*time.Second, "filter by id", chromedp.SendKeys(chromedp.ID("filter"), "m2"))
	if shown := uitest.Eval[[]string](br, `[...document.querySelectorAll('#rows tr')].filter(r => getComputedStyle(r).display !== 'none').map(r => r.dataset.id)`); fmt.Sprint(shown) != "[m2]" {
		t.Errorf("filtered by m2, the page shows %v", shown)
	}
	br.Do(5*time.Second, "clear the filter", uitest.SetValue("filter", ""))
	br.Do(10*time.Second, "open the form on a phone",
		chromedp.Click(chromedp.CSS(`tr[data-id="m1"] button[data-action="edit"]`)),
		chromedp.WaitVisible(chromedp.ID("p-server")))
	if w := uitest.Eval[float64](br, `document.getElementById('edit').getBoundingClientRect().right`); w > 375 {
		t.Errorf("the form reaches %v px on a 375 px screen", w)
	}
}

// TestPageListsEveryPage: the page follows the list's pages, whatever
// their size, and shows every connection.
func TestPageListsEveryPage(t *testing.T) {
	s := newServer(t, nil)
	s = newServerWith(t, s, &httpapi.Options{MaxPageSize: 2})
	for i := range 5 {
		if r := s.do("POST", "/connections", fmt.Sprintf(`{"id":"c%d","typ":"fake","props":{"addr":"p"}}`, i)); r.status != 201 {
			t.Fatalf("create: %d %s", r.status, r.body)
		}
	}
	br := uitest.New(t)
	br.Do(15*time.Second, "open the page",
		chromedp.Navigate(s.url+"/ui/"),
		chromedp.WaitVisible(chromedp.CSS(`tr[data-id="c4"]`)))
	if ids := uitest.Eval[[]string](br, `[...document.querySelectorAll('#rows tr')].map(r => r.dataset.id)`); fmt.Sprint(ids) != "[c0 c1 c2 c3 c4]" {
		t.Fatalf("the page lists %v", ids)
	}
}

// TestPageCheckEditIsTheForm: a check before saving an edit checks the
// form as it stands: a prop cleared in the form is not filled in from
// the stored connection, secrets included.
func TestPageCheckEditIsTheForm(t *testing.T) {
	addr := connectortest.Env(t, "CONNKIT_MQTT_AUTH_ADDR")
	user, pass := connectortest.Env(t, "CONNKIT_MQTT_USER"), connectortest.Env(t, "CONNKIT_MQTT_PASSWORD")
	m, url := servePage(t, registry.Default)
	if _, err := m.Create(context.Background(), connection.Spec{ID: "auth1", Type: "mqtt", Props: map[string]any{
		"server": "tcp://" + addr, "username": user, "password": pass}}); err != nil {
		t.Fatal(err)
	}
	br := uitest.New(t)
	br.Do(15*time.Second, "open auth1's form",
		chromedp.Navigate(url+"/ui/"),
		chromedp.Click(chromedp.CSS(`tr[data-id="auth1"] button[data-action="edit"]`)),
		chromedp.WaitVisible(chromedp.ID("p-username")),
		chromedp.Click(chromedp.ID("f-check")),
		chromedp.WaitVisible(chromedp.CSS(`#f-check-result .ok-line`)))
	br.Do(15*time.Second, "check it without its credentials",
		uitest.SetValue("p-username", ""),
		uitest.SetValue("p-password", ""),
		chromedp.Click(chromedp.ID("f-check")),
		chromedp.WaitVisible(chromedp.CSS(`#f-check-result .fail-line`)))
	if got := uitest.Eval[string](br, `document.getElementById('f-check-result').textContent`); !strings.Contains(got, "unauthorized") {
		t.Errorf("the check says %q, want unauthorized", got)
	}
}

// kinds is a type of every prop kind, for the form.
type kinds struct{ *connectortest.Fake }

func (kinds) Schema() *connector.Schema { return kindsSchema }

var kindsSchema = &connector.Schema{Fields: []connector.Field{
	{Name: "addr", Kind: connector.String, Required: true, Endpoint: true, Doc: "the simulated peer"},
	{Name: "ratio", Kind: connector.Float, Default: 0.5, Doc: "a float"},
	{Name: "tags", Kind: connector.StringList, Doc: "a list"},
	{Name: "on", Kind: connector.Bool, Default: true, Doc: "a bool that is true unless said"},
	{Name: "extra", Kind: connector.Map, Doc: "any values"},
	{Name: "headers", Kind: connector.Map, SecretKeys: []string{"*"}, Doc: "every value secret"},
}}

// TestPageEveryKind: a connection with a prop of every kind, values that
// are not strings in a map among them, survives an edit saved unchanged;
// a map whose every key is secret has password inputs for its values.
func TestPageEveryKind(t *testing.T) {
	reg := &registry.Registry{}
	reg.Register("kinds", kinds{connectortest.NewFake()})
	m, url := servePage(t, reg)
	props := map[string]any{"addr": "p", "ratio": 0.7, "tags": []any{"a", "b"}, "on": false,
		"extra":   map[string]any{"n": 5, "s": "x", "nested": map[string]any{"a": 1}, "nul": nil, "  sp": "v"},
		"headers": map[string]any{"X-Key": "hdr-secret-value"}}
	if _, err := m.Create(context.Background(), connection.Spec{ID: "k1", Type: "kinds", Props: props}); err != nil {
		t.Fatal(err)
	}
	before, _ := m.Get("k1")
	br := uitest.New(t)
	br.Do(15*time.Second, "open k1's form",
		chromedp.Navigate(url+"/ui/"),
		chromedp.Click(chromedp.CSS(`tr[data-id="k1"] button[data-action="edit"]`)),
		chromedp.WaitVisible(chromedp.ID("p-addr")))
	types := uitest.Eval[[]string](br, `[...document.querySelectorAll('fieldset[data-field="headers"] .map-value')].map(e => e.type + ' ' + e.value)`)
	if fmt.Sprint(types) != "[password ******]" {
		t.Errorf("the secret map's values: %v", types)
	}
	br.Do(10*time.Second, "add a header",
		chromedp.Click(chromedp.CSS(`fieldset[data-field="headers"] button.add`)),
		chromedp.SendKeys(chromedp.CSS(`fieldset[data-field="headers"] .map-row:last-child .map-key`), "X-Other"))
	if typ := uitest.Eval[string](br, `document.querySelector('fieldset[data-field="headers"] .map-row:last-child .map-value').type`); typ != "password" {
		t.Errorf("a new header's value is a %q input", typ)
	}
	br.Do(10*time.Second, "save unchanged",
		chromedp.Click(chromedp.CSS(`fieldset[data-field="headers"] .map-row:last-child button`)),
		chromedp.Click(chromedp.ID("f-save")),
		chromedp.WaitNotVisible(chromedp.ID("edit")))
	after, _ := m.Get("k1")
	if diff := cmp.Diff(before.Props, after.Props); diff != "" {
		t.Errorf("an unchanged edit changed the props (-before +after):\n%s", diff)
	}
	if br.Has("hdr-secret-value") {
		t.Error("the secret header is in the page")
	}
}

// TestPageLongValues: an id of 128 characters, a long ref name and a long
// error wrap: nothing scrolls sideways, in the list or in a dialog, at
// 1280x800 or at 375 px.
func TestPageLongValues(t *testing.T) {
	s := newServer(t, nil)
	id := strings.Repeat("x", 128)
	ref := "rule/" + strings.Repeat("r", 200)
	if r := s.do("POST", "/connections", `{"id":"`+id+`","typ":"fake","props":{"addr":"`+strings.Repeat("a", 300)+`"}}`); r.status != 201 {
		t.Fatalf("create: %d %s", r.status, r.body)
	}
	if _, err := s.m.Attach(context.Background(), id, ref); err != nil {
		t.Fatal(err)
	}
	br := uitest.New(t)
	row := `tr[data-id="` + id + `"] `
	br.Do(15*time.Second, "open the page and the refs",
		chromedp.Navigate(s.url+"/ui/"),
		chromedp.Click(chromedp.CSS(row+`.refs summary`)),
		chromedp.WaitVisible(chromedp.CSS(row+`.refs li`)))
	wide := func(what string) {
		t.Helper()
		for _, sel := range []string{"document.documentElement", "document.querySelector('dialog[open]')"} {
			if w := uitest.Eval[[]int](br, `(e => e ? [e.scrollWidth, e.clientWidth] : [0, 0])(`+sel+`)`); w[0] > w[1] {
				t.Errorf("%s: %s is %d px wide in %d", what, sel, w[0], w[1])
			}
		}
	}
	for _, width := range []int64{1280, 375} {
		br.Do(5*time.Second, "resize", chromedp.EmulateViewport(width, 800))
		what := fmt.Sprintf("at %d px", width)
		wide(what + ", the list")
		br.Do(10*time.Second, "a refused delete",
			chromedp.Click(chromedp.CSS(row+`button[data-action="delete"]`)),
			chromedp.Click(chromedp.ID("confirm-yes")),
			chromedp.WaitVisible(chromedp.CSS(`#confirm-body .refs-list`)))
		wide(what + ", the refused delete")
		br.Do(5*time.Second, "close it", chromedp.Click(chromedp.ID("confirm-no")), chromedp.WaitNotVisible(chromedp.ID("confirm")))
		br.Do(10*time.Second, "the history",
			chromedp.Click(chromedp.CSS(row+`button[data-action="history"]`)),
			chromedp.WaitVisible(chromedp.CSS(`#info-body table.history`)))
		wide(what + ", the history")
		br.Do(5*time.Second, "close it", chromedp.Click(chromedp.ID("info-close")), chromedp.WaitNotVisible(chromedp.ID("info")))
		br.Do(5*time.Second, "reconnect, which the notice names",
			chromedp.Evaluate[chromedp.Void](`document.getElementById('notice').textContent = '', undefined`),
			chromedp.Click(chromedp.CSS(row+`button[data-action="reconnect"]`)),
			chromedp.WaitVisible(chromedp.CSS(`#notice:not(:empty)`)))
		wide(what + ", the notice")
	}
	// A ref attached while the list is open: it stays open.
	br.Do(5*time.Second, "open the refs", chromedp.Click(chromedp.CSS(row+`.refs summary`)), chromedp.WaitVisible(chromedp.CSS(row+`.refs li`)))
	if _, err := s.m.Attach(context.Background(), id, "rule/second"); err != nil {
		t.Fatal(err)
	}
	br.Do(5*time.Second, "see the second ref", chromedp.WaitVisible(chromedp.CSS(row+`.refs li:nth-child(2)`)))
}

// gate holds the requests of one method and path until released.
type gate struct {
	next http.Handler
	mu   sync.Mutex
	key  string
	open chan struct{}
}

func (g *gate) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	g.mu.Lock()
	key, open := g.key, g.open
	g.mu.Unlock()
	if r.Method+" "+r.URL.Path == key {
		<-open
	}
	g.next.ServeHTTP(w, r)
}

// hold makes the requests of method and path wait until the returned
// function is called, or the test ends.
func (g *gate) hold(t *testing.T, method, path string) func() {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.key, g.open = method+" "+path, make(chan struct{})
	open := g.open
	release := sync.OnceFunc(func() { close(open) })
	t.Cleanup(release)
	return release
}

// TestPageLateAnswers: an answer that comes after the user moved on to
// another dialog changes the list and the notice, never that dialog: a
// slow history does not cover a form opened since, a slow save does not
// close the form of another connection, a slow refused delete does not
// take over the question about another.
func TestPageLateAnswers(t *testing.T) {
	s := newServer(t, nil)
	g := &gate{next: httpapi.New(s.m, nil)}
	ts := httptest.NewServer(g)
	t.Cleanup(ts.Close)
	s.fake.SetUp("p", true)
	for _, id := range []string{"a1", "b1"} {
		if _, err := s.m.Create(context.Background(), connection.Spec{ID: id, Type: "fake", Props: map[string]any{"addr": "p"}}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := s.m.Attach(context.Background(), "a1", "rule/holds-a1"); err != nil {
		t.Fatal(err)
	}
	br := uitest.New(t)
	br.Do(15*time.Second, "open the page",
		chromedp.Navigate(ts.URL+"/ui/"),
		chromedp.WaitVisible(chromedp.CSS(`tr[data-id="b1"]`)))
	// answered waits until the page has the answer to path (resource
	// timing lists a fetch once it is done); the page's handling of it
	// runs before the next evaluation.
	answered := func(path string) {
		t.Helper()
		js := fmt.Sprintf(`performance.getEntriesByType('resource').some(e => e.name.endsWith(%q) && e.responseEnd > 0)`, path)
		connectortest.Eventually(t, "the answer to "+path, func() bool { return uitest.Eval[bool](br, js) })
	}
	dialogs := func() string {
		return uitest.Eval[string](br, `[...document.querySelectorAll('dialog[open]')].map(d => d.querySelector('h2').textContent).join(', ')`)
	}
	row := func(id, action string) chromedp.Action[chromedp.Void] {
		return chromedp.Click(chromedp.CSS(`tr[data-id="` + id + `"] button[data-action="` + action + `"]`))
	}

	// The history's answer is looked for among the page's fetches since
	// the hold; it changes nothing the test could wait for.
	uitest.Eval[chromedp.Void](br, `performance.clearResourceTimings()`)
	release := g.hold(t, "GET", "/connections/a1/history")
	br.Do(10*time.Second, "a1's history, then b1's form", row("a1", "history"), row("b1", "edit"), chromedp.WaitVisible(chromedp.ID("p-addr")))
	release()
	answered("/connections/a1/history")
	if got := dialogs(); got != "Edit b1" {
		t.Errorf("after a late history, the dialogs open are %q, want Edit b1", got)
	}
	br.Do(5*time.Second, "close b1's form", chromedp.Click(chromedp.ID("f-cancel")), chromedp.WaitNotVisible(chromedp.ID("edit")))

	release = g.hold(t, "PUT", "/connections/b1")
	br.Do(10*time.Second, "save b1, cancel, open a1's form",
		row("b1", "edit"), chromedp.WaitVisible(chromedp.ID("p-addr")),
		chromedp.Click(chromedp.ID("f-save")), chromedp.Click(chromedp.ID("f-cancel")),
		row("a1", "edit"), chromedp.WaitVisible(chromedp.ID("p-addr")),
		uitest.SetValue("p-addr", "typed"))
	release()
	// The notice is what the late answer changes: once it says so, the
	// answer has been handled.
	noticed := func(want string) {
		t.Helper()
		connectortest.Eventually(t, "the notice "+want, func() bool {
			return strings.Contains(uitest.Eval[string](br, `document.getElementById('notice').textContent`), want)
		})
	}
	noticed("Saved b1.")
	if got := dialogs(); got != "Edit a1" {
		t.Errorf("after b1's late save, the dialogs open are %q, want Edit a1", got)
	}
	if v := uitest.Eval[string](br, `document.getElementById('p-addr').value`); v != "typed" {
		t.Errorf("a1's form holds %q after b1's late save, want what was typed", v)
	}
	br.Do(5*time.Second, "close a1's form", chromedp.Click(chromedp.ID("f-cancel")), chromedp.WaitNotVisible(chromedp.ID("edit")))

	release = g.hold(t, "DELETE", "/connections/a1")
	br.Do(10*time.Second, "delete a1, cancel, ask about b1",
		row("a1", "delete"), chromedp.Click(chromedp.ID("confirm-yes")), chromedp.Click(chromedp.ID("confirm-no")),
		row("b1", "delete"), chromedp.WaitVisible(chromedp.ID("confirm-yes")))
	release()
	noticed("a1 was not deleted")
	if got := uitest.Eval[string](br, `document.getElementById('confirm-body').textContent`); !strings.Contains(got, "b1") || strings.Contains(got, "a1") {
		t.Errorf("the question about b1 says %q after a1's late refusal", got)
	}
	if hidden := uitest.Eval[bool](br, `document.getElementById('confirm-yes').hidden`); hidden {
		t.Error("the question about b1 lost its Delete button")
	}
}
