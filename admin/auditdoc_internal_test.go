package admin

import (
	"encoding/json"
	"reflect"
	"testing"
	"time"

	"github.com/trustgate/trustgate/audit"
)

// The API's audit entry (the SDK's type) carries every field of the log's entry under the same
// JSON name: a field added to audit.Entry and forgotten in auditDoc fails here.
func TestAuditDocKeepsEveryField(t *testing.T) {
	var e audit.Entry
	v := reflect.ValueOf(&e).Elem()
	for i := range v.NumField() {
		f := v.Field(i)
		switch f.Kind() {
		case reflect.String:
			f.SetString("v" + v.Type().Field(i).Name)
		case reflect.Int, reflect.Int64:
			f.SetInt(int64(i + 1))
		case reflect.Slice:
			if f.Type().Elem().Kind() != reflect.String {
				t.Fatalf("audit.Entry.%s is a slice of %s, which this test does not fill", v.Type().Field(i).Name, f.Type().Elem().Kind())
			}
			f.Set(reflect.ValueOf([]string{"v" + v.Type().Field(i).Name}))
		default:
			if f.Type() == reflect.TypeFor[time.Time]() {
				f.Set(reflect.ValueOf(time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)))
			} else {
				t.Fatalf("audit.Entry.%s has a kind this test does not fill: %s", v.Type().Field(i).Name, f.Kind())
			}
		}
	}
	var want, got map[string]any
	doc := auditDoc(e)
	for doc, out := range map[any]*map[string]any{&e: &want, &doc: &got} {
		b, err := json.Marshal(doc)
		if err != nil {
			t.Fatal(err)
		}
		if err := json.Unmarshal(b, out); err != nil {
			t.Fatal(err)
		}
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("auditDoc(e) = %v\nwant %v", got, want)
	}
}
