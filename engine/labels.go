package engine

import (
	"path/filepath"
	"regexp"

	"github.com/vmconv/terraform-provider-vmconv/engine/fault"
	"github.com/vmconv/terraform-provider-vmconv/engine/fetch"
	"github.com/vmconv/terraform-provider-vmconv/engine/ovf"
)

// An OVA's disk or a downloaded file is read from the cache, so the faults
// about it (a corrupt disk found by FLATTEN, a bad member found while
// extracting a downloaded OVA) name cache files the user never wrote and
// cannot act on. sourceLabels maps those paths back to what the user wrote:
// "web.ova member web-disk1.vmdk", or the URL without its secrets.
type sourceLabels []*labelRule

type labelRule struct {
	re *regexp.Regexp
	to func(match string) string
}

// sourceLabels lists the cache paths a source's faults may name.
func (e *Engine) sourceLabels(src SourceSpec) sourceLabels {
	// Extractions live in cache/ova/<key>/; the folder being filled is
	// <key>.tmp/, and faults about writing it rightly name the cache.
	ovaDir := regexp.QuoteMeta(filepath.Join(e.cfg.CacheDir, "ova")) + `/[0-9a-f]{24}/`
	member := func(archive string) *labelRule {
		return &labelRule{regexp.MustCompile(ovaDir), func(string) string { return ovf.MemberLabel(archive, "") }}
	}
	switch {
	case src.OVA != "":
		return sourceLabels{member(src.OVA)}
	case src.OVAURL != nil:
		shown := shownURL(src.OVAURL)
		return sourceLabels{member(shown), e.downloadRule(src.OVAURL, shown)}
	case src.URL != nil:
		return sourceLabels{e.downloadRule(src.URL, shownURL(src.URL))}
	}
	return nil
}

// downloadRule maps the download's cache file, and only it: its .part and
// .json files are the cache's own and keep their names.
func (e *Engine) downloadRule(u *URLSpec, shown string) *labelRule {
	dest := e.urlCachePath(u)
	re := regexp.MustCompile(regexp.QuoteMeta(dest) + `($|[^\w.~+-])`)
	return &labelRule{re, func(m string) string { return shown + m[len(dest):] }}
}

func shownURL(u *URLSpec) string {
	if u.Shown != "" {
		return u.Shown
	}
	return fetch.Redact(u.Href)
}

func (ls sourceLabels) text(s string) string {
	for _, l := range ls {
		s = l.re.ReplaceAllStringFunc(s, l.to)
	}
	return s
}

// relabel rewrites err in place so that it names what the user wrote. The
// underlying error keeps its identity (errors.Is still sees it); only its
// text changes.
func (ls sourceLabels) relabel(err error) error {
	if err == nil || len(ls) == 0 {
		return err
	}
	fe, ok := fault.As(err)
	if !ok {
		return relabelled(err, ls.text(err.Error()))
	}
	fe.File, fe.Msg, fe.Hint = ls.text(fe.File), ls.text(fe.Msg), ls.text(fe.Hint)
	for i := range fe.Facts {
		fe.Facts[i].Value = ls.text(fe.Facts[i].Value)
	}
	if fe.Err != nil {
		fe.Err = relabelled(fe.Err, ls.text(fe.Err.Error()))
	}
	return err
}

func relabelled(err error, text string) error {
	if text == err.Error() {
		return err
	}
	return &labelledError{text, err}
}

type labelledError struct {
	text string
	err  error
}

func (l *labelledError) Error() string { return l.text }
func (l *labelledError) Unwrap() error { return l.err }
