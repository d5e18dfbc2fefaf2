package httpapi

import (
	"net/http"
	"slices"

	"github.com/connkit/connkit/connection"
	"github.com/connkit/connkit/connector"
)

// obj is a JSON object of the document.
type obj = map[string]any

// openAPI serves GET /openapi.json: the OpenAPI 3.1 document of every
// route, with the props of each type registered now.
func (h *Handler) openAPI(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, h.Document())
}

// Document returns the OpenAPI 3.1 document of the API, errors included,
// with each registered type's props as a schema (a oneOf on typ; secrets
// writeOnly, format password), so that the types of a private registry
// appear too.
func (h *Handler) Document() map[string]any {
	types := h.m.Types()
	var specs, updates []any
	schemas := obj{
		"Problem":    problemSchema(),
		"Connection": connectionSchema(),
		"Status":     statusSchema(),
		"Step": obj{"type": "object", "required": []string{"name", "ok", "ms"}, "properties": obj{
			"name": str(), "ok": boolean(), "ms": integer(), "error": str()}},
		"CheckResult": obj{"type": "object", "required": []string{"ok", "latencyMs", "steps"}, "properties": obj{
			"ok": boolean(), "latencyMs": integer(), "steps": arrayOf(ref("Step"))}},
		"Applied": obj{"type": "object", "required": []string{"id", "action"}, "properties": obj{
			"id": str(), "action": enum("create", "update", "unchanged", "delete", "refused"),
			"version": integer(), "error": str(), "refs": arrayOf(str())}},
		"Transition": obj{"type": "object", "required": []string{"state", "err", "since"}, "properties": obj{
			"state": ref("State"), "err": str(), "permanent": boolean(), "since": dateTime()}},
		"State": enum(string(connection.StateConnecting), string(connection.StateConnected), string(connection.StateDisconnected)),
		"Health": obj{"type": "object", "required": []string{"status"}, "properties": obj{
			"status": enum("ok", "unavailable"), "error": str(),
			"checks": arrayOf(obj{"type": "object", "required": []string{"name", "ok"}, "properties": obj{
				"name": str(), "ok": boolean(), "error": str()}})}},
		"TypeInfo": obj{"type": "object", "required": []string{"type", "schema"}, "properties": obj{
			"type": str(), "schema": obj{"type": "object"}}},
		"CheckProps": obj{"type": "object", "description": "The flat props of a source or sink: the connection's, and its own (a topic, a table); connectionSelector names a stored connection whose props lie under these.",
			"properties": obj{"connectionSelector": str()}},
	}
	for _, t := range types {
		props := propsSchema(t.Schema)
		schemas["Props_"+t.Name] = props
		specs = append(specs, obj{"type": "object", "required": []string{"id", "typ", "props"}, "additionalProperties": false,
			"properties": obj{"id": idSchema(), "typ": obj{"const": t.Name}, "props": ref("Props_" + t.Name)}})
		updates = append(updates, obj{"type": "object", "required": []string{"typ", "props"}, "additionalProperties": false,
			"properties": obj{"id": idSchema(), "typ": obj{"const": t.Name}, "props": ref("Props_" + t.Name)}})
	}
	if len(specs) == 0 { // no type registered: nothing can be valid
		specs, updates = []any{obj{"not": obj{}}}, []any{obj{"not": obj{}}}
	}
	schemas["ConnectionSpec"] = obj{"oneOf": specs}
	schemas["ConnectionUpdate"] = obj{"oneOf": updates}

	idParam := obj{"name": "id", "in": "path", "required": true, "schema": idSchema()}
	typeParam := obj{"name": "type", "in": "path", "required": true, "schema": str()}
	ifMatch := obj{"name": "If-Match", "in": "header", "schema": str(), "description": "the ETag of a GET (incarnation and version), such as \"1042-3\"; * for any"}
	check := func(summary string) obj {
		return obj{"summary": summary, "parameters": []any{typeParam},
			"requestBody": jsonBody(ref("CheckProps"), true),
			"responses":   withErrors(obj{"200": jsonResponse("the check passed", ref("CheckResult"))})}
	}
	paths := obj{
		"/connections": obj{
			"get": obj{"summary": "List the connections, sorted by id, in pages",
				"parameters": []any{
					obj{"name": "limit", "in": "query", "schema": obj{"type": "integer", "minimum": 1}},
					obj{"name": "after", "in": "query", "schema": str()}},
				"responses": withErrors(obj{"200": jsonResponse("a page of connections; Link rel=next says where the next is", arrayOf(ref("Connection")))})},
			"post": obj{"summary": "Create a connection",
				"requestBody": jsonBody(ref("ConnectionSpec"), true),
				"responses":   withErrors(obj{"201": jsonResponse("created", ref("Connection"))})},
			"put": obj{"summary": "Make the stored connections match a set",
				"parameters": []any{
					obj{"name": "prune", "in": "query", "schema": boolean()},
					obj{"name": "dryRun", "in": "query", "schema": boolean()}},
				"requestBody": jsonBody(arrayOf(ref("ConnectionSpec")), true),
				"responses":   withErrors(obj{"200": jsonResponse("what was done to each connection", arrayOf(ref("Applied")))})},
		},
		"/connections/{id}": obj{
			"parameters": []any{idParam},
			"get": obj{"summary": "Get a connection",
				"responses": withErrors(obj{"200": jsonResponse("the connection; ETag is its incarnation and version", ref("Connection"))})},
			"put": obj{"summary": "Update a connection", "parameters": []any{ifMatch},
				"requestBody": jsonBody(ref("ConnectionUpdate"), true),
				"responses":   withErrors(obj{"200": jsonResponse("updated", ref("Connection"))})},
			"delete": obj{"summary": "Delete a connection", "parameters": []any{ifMatch},
				"responses": withErrors(obj{"204": obj{"description": "deleted"}})},
		},
		"/connections/{id}/history": obj{"parameters": []any{idParam},
			"get": obj{"summary": "The last 50 status transitions",
				"responses": withErrors(obj{"200": jsonResponse("oldest first", arrayOf(ref("Transition")))})}},
		"/connections/{id}/reconnect": obj{"parameters": []any{idParam},
			"post": obj{"summary": "Close the link and dial again now",
				"responses": withErrors(obj{"202": jsonResponse("the redial is asked", ref("Connection"))})}},
		"/connections/{id}/check": obj{"parameters": []any{idParam},
			"post": obj{"summary": "Check the stored connection, with its secrets",
				"parameters":  []any{obj{"name": "role", "in": "query", "schema": enum("source", "sink")}},
				"requestBody": jsonBody(ref("CheckProps"), false),
				"responses":   withErrors(obj{"200": jsonResponse("the check passed", ref("CheckResult"))})}},
		"/metadata/connections": obj{
			"get": obj{"summary": "The types and their props",
				"responses": withErrors(obj{"200": jsonResponse("sorted by name", arrayOf(ref("TypeInfo")))})}},
		"/metadata/sinks/connection/{type}":   obj{"post": check("Check a sink configuration")},
		"/metadata/sources/connection/{type}": obj{"post": check("Check a source configuration")},
		"/events": obj{
			"get": obj{"summary": "Server-Sent Events of every change",
				"parameters": []any{
					obj{"name": "connection", "in": "query", "schema": idSchema()},
					obj{"name": "Last-Event-ID", "in": "header", "schema": obj{"type": "string", "pattern": "^[0-9]+$"}}},
				"responses": withErrors(obj{"200": obj{"description": "id: the sequence, event: the kind, data: the event as JSON",
					"content": obj{"text/event-stream": obj{"schema": str()}}}})}},
		"/livez": obj{"get": obj{"summary": "Liveness",
			"responses": obj{"200": jsonResponse("the process serves", ref("Health"))}}},
		"/readyz": obj{"get": obj{"summary": "Readiness",
			"parameters": []any{
				obj{"name": "connection", "in": "query", "schema": arrayOf(idSchema()), "style": "form", "explode": true},
				obj{"name": "verbose", "in": "query", "schema": str(), "allowEmptyValue": true}},
			"responses": obj{"200": jsonResponse("ready", ref("Health")), "503": jsonResponse("not ready", ref("Health"))}}},
		"/openapi.json": obj{"get": obj{"summary": "This document",
			"responses": obj{"200": jsonResponse("OpenAPI 3.1", obj{"type": "object"})}}},
	}
	return obj{
		"openapi": "3.1.0",
		"info": obj{"title": "connkit", "version": "1",
			"description": "Named, shared connections: CRUD, checks, events and health. Errors are RFC 9457 problems."},
		"paths":      paths,
		"components": obj{"schemas": schemas},
	}
}

func ref(name string) obj { return obj{"$ref": "#/components/schemas/" + name} }
func str() obj            { return obj{"type": "string"} }
func boolean() obj        { return obj{"type": "boolean"} }
func integer() obj        { return obj{"type": "integer"} }
func dateTime() obj       { return obj{"type": "string", "format": "date-time"} }
func arrayOf(items obj) obj {
	return obj{"type": "array", "items": items}
}
func enum(vs ...string) obj { return obj{"type": "string", "enum": vs} }

func idSchema() obj {
	return obj{"type": "string", "pattern": "^[A-Za-z0-9_-]{1,128}$"}
}

func jsonBody(schema obj, required bool) obj {
	return obj{"required": required, "content": obj{"application/json": obj{"schema": schema}}}
}

func jsonResponse(desc string, schema obj) obj {
	return obj{"description": desc, "content": obj{"application/json": obj{"schema": schema}}}
}

// withErrors adds the problem answer of every error status.
func withErrors(rs obj) obj {
	rs["default"] = obj{"description": "an error, as a problem (RFC 9457)",
		"content": obj{"application/problem+json": obj{"schema": ref("Problem")}}}
	return rs
}

func problemSchema() obj {
	codes := make([]string, len(connection.Codes))
	for i, c := range connection.Codes {
		codes[i] = string(c)
	}
	return obj{"type": "object", "required": []string{"type", "title", "status", "detail", "code", "error"}, "properties": obj{
		"type": obj{"type": "string", "format": "uri"}, "title": str(), "status": integer(), "detail": str(),
		"code": enum(codes...), "error": str(),
		"fields": arrayOf(obj{"type": "object", "required": []string{"field", "message"}, "properties": obj{"field": str(), "message": str()}}),
		"refs":   arrayOf(str()), "reason": str(), "steps": arrayOf(ref("Step")),
	}}
}

func statusSchema() obj {
	return obj{"type": "object", "properties": obj{
		"status": ref("State"), "err": str(), "permanent": boolean(), "statusSince": dateTime(),
		"attempts": integer(), "nextAttemptAt": dateTime()}}
}

func connectionSchema() obj {
	return obj{"type": "object",
		"required": []string{"id", "typ", "props", "status", "err", "statusSince", "refCount", "refs", "version", "createdAt", "updatedAt"},
		"properties": obj{
			"id": idSchema(), "typ": str(),
			"props":  obj{"type": "object", "description": "as stored, secrets masked as ******"},
			"status": ref("State"), "err": str(), "permanent": boolean(), "statusSince": dateTime(),
			"attempts": integer(), "nextAttemptAt": dateTime(),
			"refCount": integer(), "refs": arrayOf(str()), "version": integer(),
			"lastActivityAt": dateTime(), "createdAt": dateTime(), "updatedAt": dateTime(),
		}}
}

// propsSchema is the JSON Schema of a type's props, as Decode accepts
// them: a null optional prop is as if left out.
func propsSchema(s *connector.Schema) obj {
	props := obj{}
	var required []string
	for _, f := range s.Fields {
		var p obj
		switch f.Kind {
		case connector.Int:
			p = integer()
		case connector.Float:
			p = obj{"type": "number"}
		case connector.Bool:
			p = boolean()
		case connector.StringList:
			p = arrayOf(str())
		case connector.Map:
			p = obj{"type": "object"}
			if len(f.SecretKeys) > 0 {
				p["description"] = "values of the keys " + joinKeys(f.SecretKeys) + " are secret"
			}
		default:
			p = str()
		}
		if f.Secret {
			p["writeOnly"], p["format"] = true, "password"
		}
		if len(f.Allowed) > 0 {
			p["enum"] = f.Allowed
		}
		if f.Default != nil {
			p["default"] = f.Default
		}
		if f.Doc != "" {
			p["description"] = f.Doc
		}
		if f.Required {
			required = append(required, f.Name)
		} else {
			p = obj{"oneOf": []any{p, obj{"type": "null"}}}
		}
		props[f.Name] = p
	}
	out := obj{"type": "object", "properties": props, "additionalProperties": false}
	if required != nil {
		out["required"] = required
	}
	return out
}

func joinKeys(keys []string) string {
	keys = slices.Clone(keys)
	slices.Sort(keys)
	out := ""
	for i, k := range keys {
		if i > 0 {
			out += ", "
		}
		out += k
	}
	return out
}
