package admin

import (
	"encoding/base64"
	"net/http"
	"sort"
	"strconv"
)

const (
	defaultPageSize = 50
	maxPageSize     = 500
)

// paginate returns the page of items (sorted by key) after the request's cursor. The cursor is
// the opaque encoding of the last key of the previous page, so pages stay stable while items
// are added or removed.
func paginate[T any](r *http.Request, items []T, key func(T) string) (Page[T], error) {
	limit := defaultPageSize
	if v := r.URL.Query().Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > maxPageSize {
			return Page[T]{}, problemf(http.StatusBadRequest, "limit must be a number from 1 to %d", maxPageSize)
		}
		limit = n
	}
	sort.SliceStable(items, func(i, j int) bool { return key(items[i]) < key(items[j]) })
	start := 0
	if c := r.URL.Query().Get("cursor"); c != "" {
		after, err := base64.RawURLEncoding.DecodeString(c)
		if err != nil {
			return Page[T]{}, problemf(http.StatusBadRequest, "cursor is malformed; pass next_cursor from the previous page")
		}
		start = sort.Search(len(items), func(i int) bool { return key(items[i]) > string(after) })
	}
	end := min(start+limit, len(items))
	page := Page[T]{Items: items[start:end]}
	if page.Items == nil {
		page.Items = []T{}
	}
	if end < len(items) {
		page.NextCursor = base64.RawURLEncoding.EncodeToString([]byte(key(items[end-1])))
	}
	return page, nil
}
