package admin

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net/http"
	"strings"

	"github.com/trustgate/trustgate/catalog/discovery"
	"github.com/trustgate/trustgate/sdk"
	"github.com/trustgate/trustgate/store"
)

// maxBodyBytes bounds every request body of the admin API.
const maxBodyBytes = 1 << 20

// apiError is an error with the HTTP status and problem title it maps to.
type apiError struct {
	status int
	title  string
	detail string
}

func (e *apiError) Error() string { return e.detail }

func problemf(status int, format string, args ...any) error {
	return &apiError{status: status, title: http.StatusText(status), detail: fmt.Sprintf(format, args...)}
}

// toProblem maps an error to its problem document. Store and discovery errors carry their own
// clear messages; anything unexpected is a 500 whose detail names the request id only.
func toProblem(err error, requestID string, log *slog.Logger) Problem {
	var ae *apiError
	status, title, detail := 0, "", err.Error()
	switch {
	case errors.As(err, &ae):
		status, title, detail = ae.status, ae.title, ae.detail
	case errors.Is(err, store.ErrNotFound):
		status = http.StatusNotFound
	case errors.Is(err, store.ErrConflict):
		status = http.StatusConflict
	case errors.Is(err, store.ErrInvalid):
		status = http.StatusBadRequest
	case errors.Is(err, discovery.ErrInvalidURL):
		status = http.StatusBadRequest
	case errors.Is(err, discovery.ErrUnreachable), errors.Is(err, discovery.ErrNotMCP),
		errors.Is(err, discovery.ErrUnauthorized), errors.Is(err, discovery.ErrInvalidTool),
		errors.Is(err, discovery.ErrTooManyTools):
		status, title = http.StatusBadGateway, "Upstream MCP server problem"
	default:
		status = http.StatusInternalServerError
		log.Error("admin API request failed", "request_id", requestID, "err", err)
		detail = "internal error; see the gateway's logs for request " + requestID
	}
	if title == "" {
		title = http.StatusText(status)
	}
	field := ""
	if fe := (*store.FieldError)(nil); errors.As(err, &fe) && status < 500 {
		field = fe.Field
	}
	typ := "about:blank"
	if errors.As(err, new(notEnforced)) {
		typ, title = sdk.ProblemNotEnforced, "Saved, not enforced yet"
	}
	return Problem{
		Field:    field,
		Type:     typ,
		Title:    title,
		Status:   status,
		Detail:   detail,
		Instance: "urn:trustgate:request:" + requestID,
	}
}

func writeProblem(w http.ResponseWriter, p Problem) {
	w.Header().Set("Content-Type", "application/problem+json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(p.Status)
	_ = json.NewEncoder(w).Encode(p)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	if v != nil {
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		_ = enc.Encode(v)
	}
}

// decodeBody reads one JSON document of at most maxBodyBytes into v, refusing unknown fields,
// trailing data and content types other than JSON.
func decodeBody(w http.ResponseWriter, r *http.Request, v any) error {
	if ct := r.Header.Get("Content-Type"); ct != "" {
		mt, _, err := mime.ParseMediaType(ct)
		if err != nil || (mt != "application/json" && !strings.HasSuffix(mt, "+json")) {
			return problemf(http.StatusUnsupportedMediaType, "request body must be application/json, not %q", ct)
		}
	}
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxBodyBytes))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		var maxErr *http.MaxBytesError
		var syntaxErr *json.SyntaxError
		var typeErr *json.UnmarshalTypeError
		switch {
		case errors.As(err, &maxErr):
			return problemf(http.StatusRequestEntityTooLarge, "request body is larger than %d bytes", maxBodyBytes)
		case errors.Is(err, io.EOF):
			return problemf(http.StatusBadRequest, "request body is empty; send a JSON object")
		case errors.Is(err, io.ErrUnexpectedEOF):
			return problemf(http.StatusBadRequest, "request body is not valid JSON: it ends too early")
		case errors.As(err, &syntaxErr):
			return problemf(http.StatusBadRequest, "request body is not valid JSON (at byte %d): %v", syntaxErr.Offset, err)
		case errors.As(err, &typeErr):
			return problemf(http.StatusBadRequest, "field %q must be %s, not %s", typeErr.Field, typeErr.Type, typeErr.Value)
		case strings.HasPrefix(err.Error(), "json: unknown field"):
			return problemf(http.StatusBadRequest, "request body has an %s", strings.TrimPrefix(err.Error(), "json: "))
		}
		return problemf(http.StatusBadRequest, "request body: %v", err)
	}
	if dec.More() {
		return problemf(http.StatusBadRequest, "request body must hold exactly one JSON object")
	}
	var rest [1]byte
	if n, _ := dec.Buffered().Read(rest[:]); n > 0 && strings.TrimSpace(string(rest[:n])) != "" {
		return problemf(http.StatusBadRequest, "request body must hold exactly one JSON object")
	}
	return nil
}

func isNotFound(err error) bool { return errors.Is(err, store.ErrNotFound) }
