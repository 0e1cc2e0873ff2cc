package dashboard

import (
	"net/http"
	"strconv"

	"github.com/trustgate/trustgate/sdk"
)

// The host's relationship changes set aside: changes the authorization backend refused for
// good. While the host has one, every call on it is refused (reason pending_change); the host
// page says so, lists them and retries or discards them through the admin API as the
// signed-in person.

func setAsideURL(r *http.Request) string {
	return Prefix + "/hosts/" + r.PathValue("host")
}

// setAsideID is the path's change id; a malformed one is left to the API, which refuses it
// with its own words.
func setAsideID(r *http.Request) int64 {
	id, err := strconv.ParseInt(r.PathValue("id"), 10, 64)
	if err != nil {
		return 0
	}
	return id
}

func (d *Dashboard) retrySetAside(w http.ResponseWriter, r *http.Request, v *viewer) {
	res, err := d.api.RetrySetAsideChange(as(r, v), r.PathValue("host"), setAsideID(r))
	if err != nil {
		d.apiError(w, r, v, err)
		return
	}
	done := "change-retried"
	if res.SetAsideAgain != nil {
		done = "change-refused-again"
	}
	http.Redirect(w, r, setAsideURL(r)+"?done="+done+"#set-aside", http.StatusSeeOther)
}

// discardSetAside discards a set-aside change, once its row's confirmation was ticked.
func (d *Dashboard) discardSetAside(w http.ResponseWriter, r *http.Request, v *viewer) {
	if r.PostFormValue("confirm") != "yes" {
		d.errorPage(w, r, v, http.StatusBadRequest, "Tick the confirmation to discard the change; nothing was discarded.")
		return
	}
	if err := d.api.DiscardSetAsideChange(as(r, v), r.PathValue("host"), setAsideID(r)); err != nil {
		d.apiError(w, r, v, err)
		return
	}
	http.Redirect(w, r, setAsideURL(r)+"?done=change-discarded#set-aside", http.StatusSeeOther)
}

// setAsideChanges reads the host's set-aside changes when the host counts some.
func (d *Dashboard) setAsideChanges(r *http.Request, v *viewer, h sdk.Host) ([]sdk.SetAsideChange, bool, error) {
	if h.SetAsideChanges == 0 {
		return nil, false, nil
	}
	ctx := as(r, v)
	return collectPages(func(p sdk.PageRequest) (sdk.Page[sdk.SetAsideChange], error) {
		return d.api.ListSetAsideChanges(ctx, h.Key, p)
	})
}
