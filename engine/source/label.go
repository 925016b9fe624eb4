package source

import (
	"regexp"

	"github.com/vmconv/terraform-provider-vmconv/engine/fault"
)

// An OVA's disk or a downloaded file is read from the cache, so the faults
// about it (a corrupt disk found by FLATTEN, a bad member found while
// extracting a downloaded OVA) name cache files the user never wrote and
// cannot act on. labels map those paths back to what the user wrote:
// "web.ova member web-disk1.vmdk", or the URL without its secrets.
type labels []*labelRule

type labelRule struct {
	re *regexp.Regexp
	to func(match string) string
}

func (ls labels) text(s string) string {
	for _, l := range ls {
		s = l.re.ReplaceAllStringFunc(s, l.to)
	}
	return s
}

// relabel rewrites err in place so that it names what the user wrote. The
// underlying error keeps its identity (errors.Is still sees it); only its
// text changes.
func (ls labels) relabel(err error) error {
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
