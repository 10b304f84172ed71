package console

import (
	"net/http"
	"strconv"
	"strings"

	"github.com/spoolmq/spool/internal/broker"
)

// dlView is one dead letter.
type dlView struct {
	broker.DeadLetterInfo
	Msg msgView
}

// redriveForm is the redrive form's values.
type redriveForm struct {
	Target, Limit, Reason string
	DryRun                bool
}

type deadLettersData struct {
	Topic, Sub string
	DLQ        string // the dead-letter topic
	DLQExists  bool
	From       int64
	Limit      int
	Letters    []dlView
	Next       string // the next page's URL
	Report     *broker.RedriveReport
	ReportMore int // offsets moved beyond those listed
	Form       redriveForm
}

// maxReportOffsets bounds the offsets a redrive report lists.
const maxReportOffsets = 100

// deadLetters is the dead-letter view: GET
// /topics/{topic}/subscriptions/{sub}/dead-letters?from=&limit=.
func (c *Console) deadLetters(w http.ResponseWriter, r *http.Request) {
	c.renderDeadLetters(w, r, nil, redriveForm{Target: "subscription"})
}

func (c *Console) renderDeadLetters(w http.ResponseWriter, r *http.Request, rep *broker.RedriveReport, form redriveForm) {
	b := c.cfg.Broker
	tn, sn := r.PathValue("topic"), r.PathValue("sub")
	q := r.URL.Query()
	limit, err := parseLimit(q.Get("limit"))
	if err != nil {
		c.fail(w, r, http.StatusBadRequest, "Limit: "+err.Error()+".")
		return
	}
	var from int64
	if s := q.Get("from"); s != "" {
		if from, err = strconv.ParseInt(s, 10, 64); err != nil || from < 0 {
			c.fail(w, r, http.StatusBadRequest, "From "+strconv.Quote(s)+" is not an offset (a whole number, 0 or more).")
			return
		}
	}
	si, err := b.DescribeSubscription(tn, sn)
	if err != nil {
		c.failErr(w, r, err)
		return
	}
	d := deadLettersData{Topic: tn, Sub: sn, DLQ: si.Sub.StreamFailure().DeadLetter, From: from, Limit: limit, Report: rep, Form: form}
	_, d.DLQExists = b.Topic(d.DLQ)
	list, next, err := b.ListDeadLetters(tn, sn, from, limit)
	if err != nil {
		c.failErr(w, r, err)
		return
	}
	t, _ := b.Topic(tn)
	for _, dl := range list {
		d.Letters = append(d.Letters, dlView{DeadLetterInfo: dl, Msg: c.view(t.Config.SchemaSubject, dl.Message)})
	}
	if _, end, err := b.Offsets(d.DLQ, 0); err == nil && next < end && len(list) > 0 {
		d.Next = "/topics/" + urlSeg(tn) + "/subscriptions/" + urlSeg(sn) + "/dead-letters?from=" +
			strconv.FormatInt(next, 10) + "&limit=" + strconv.Itoa(limit)
	}
	if rep != nil && len(rep.Offsets) > maxReportOffsets {
		d.ReportMore = int(rep.Moved) - maxReportOffsets
		cp := *rep
		cp.Offsets = cp.Offsets[:maxReportOffsets]
		d.Report = &cp
	}
	c.render(w, r, http.StatusOK, "deadletters", page{Title: "Dead letters of " + sn, Nav: "topics",
		Crumbs: []crumb{{"Topics", "/"}, {tn, "/topics/" + urlSeg(tn)}, {sn, "/topics/" + urlSeg(tn) + "/subscriptions/" + urlSeg(sn)}},
		Data:   d})
}

// redrive moves dead letters back (POST, same origin only): target
// subscription or topic, limit (empty or 0: all), reason (empty: any),
// dry_run.
func (c *Console) redrive(w http.ResponseWriter, r *http.Request) {
	if !c.checkPost(w, r) {
		return
	}
	tn, sn := r.PathValue("topic"), r.PathValue("sub")
	f := redriveForm{Target: r.PostFormValue("target"), Limit: strings.TrimSpace(r.PostFormValue("limit")),
		Reason: strings.TrimSpace(r.PostFormValue("reason")), DryRun: r.PostFormValue("dry_run") != ""}
	req := broker.RedriveRequest{Topic: tn, Subscription: sn, Reason: f.Reason, DryRun: f.DryRun}
	switch f.Target {
	case "", "subscription":
		req.Target = broker.RedriveToSubscription
	case "topic":
		req.Target = broker.RedriveToTopic
	default:
		c.fail(w, r, http.StatusBadRequest, "Target "+strconv.Quote(f.Target)+": choose subscription or topic.")
		return
	}
	if f.Limit != "" {
		n, err := strconv.ParseInt(f.Limit, 10, 64)
		if err != nil || n < 0 {
			c.fail(w, r, http.StatusBadRequest, "Count "+strconv.Quote(f.Limit)+" is not a number of messages (0 or empty: all).")
			return
		}
		req.Limit = n
	}
	if len(f.Reason) > 256 {
		c.fail(w, r, http.StatusBadRequest, "The reason is longer than 256 bytes.")
		return
	}
	rep, err := c.cfg.Broker.Redrive(r.Context(), req)
	if err != nil {
		c.failErr(w, r, err)
		return
	}
	c.log.Info("console: redrive", "topic", tn, "subscription", sn, "moved", rep.Moved, "dry_run", f.DryRun, "remote", r.RemoteAddr)
	c.renderDeadLetters(w, r, &rep, f)
}
