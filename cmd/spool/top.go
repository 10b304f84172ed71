package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"time"

	tea "charm.land/bubbletea/v2"
	"github.com/charmbracelet/x/term"
	"github.com/spf13/cobra"
)

// topOptions are the flags of `spool top`.
type topOptions struct {
	interval    time.Duration
	once, watch bool
	prefix      string
	sort        string
}

func newTopCmd() *cobra.Command {
	var o topOptions
	cmd := &cobra.Command{
		Use:   "top",
		Short: "Show topics and subscriptions live: rates, lag, queue state",
		Long: "Show the server's topics and subscriptions, refreshed every --interval: per topic the partitions,\n" +
			"messages and bytes stored and the publish rate (messages and bytes per second, from the change\n" +
			"of end offsets and sizes between two polls); per subscription the mode, members, lag, the age\n" +
			"of the oldest unconsumed message, the messages in flight (queue mode), the consume rate (from the\n" +
			"change of committed offsets or ack floors) and the messages dead-lettered since the server started.\n\n" +
			"On a terminal it is a full-screen view: q or ctrl+c quits, s cycles the sort column (name, rate,\n" +
			"lag), / or f filters by topic prefix (it applies as you type, enter keeps it, esc restores\n" +
			"the previous one, ctrl+u empties it), arrows, j and k, page up and down, g and G scroll.\n" +
			"Connection errors show in the status line and are retried at the next refresh.\n\n" +
			"With --once, or when stdout is not a terminal (unless --watch), it prints one snapshot as plain\n" +
			"text tables and exits: two polls --interval apart, so that rates are known. --watch on a\n" +
			"non-terminal prints a snapshot every --interval until interrupted.",
		Example: "  spool top\n" +
			"  spool top --topic orders --sort lag\n" +
			"  spool top --once --interval 1s",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if o.interval <= 0 {
				return usageErrorf(cmd, "--interval: must be positive")
			}
			if o.once && o.watch {
				return usageErrorf(cmd, "--once and --watch: give one of them")
			}
			by, _ := parseTopSort(o.sort)
			out, ctx := cmd.OutOrStdout(), cmd.Context()
			tty := writerIsTerminal(out)
			logw := cmd.ErrOrStderr()
			if tty && !o.once {
				// The SDK's warnings would write over the screen; failed
				// polls show in its status line.
				logw = io.Discard
			}
			c, err := newClientLogging(cmd, logw)
			if err != nil {
				return err
			}
			defer c.Close()
			switch {
			case o.once || (!o.watch && !tty):
				return topOnce(ctx, c, out, o, by)
			case !tty:
				return topWatch(ctx, c, out, cmd.ErrOrStderr(), o, by)
			}
			m := newTopModel(ctx, c, c.Addr(), o, by)
			_, err = tea.NewProgram(m, tea.WithContext(ctx), tea.WithOutput(out)).Run()
			return err
		},
	}
	f := cmd.Flags()
	f.DurationVar(&o.interval, "interval", 2*time.Second, "time between polls of the server")
	f.BoolVar(&o.once, "once", false, "print one snapshot as plain text (two polls --interval apart) and exit")
	f.BoolVar(&o.watch, "watch", false, "keep refreshing even when stdout is not a terminal: a plain snapshot every --interval")
	f.StringVar(&o.prefix, "topic", "", "show only topics whose names start with `PREFIX` (and their subscriptions); on a terminal, the filter it starts with")
	f.Var(newEnum(&o.sort, "name", topSortNames...), "sort", "sort both tables by name, rate (highest first) or lag (highest first)")
	return cmd
}

// writerIsTerminal reports whether w is a terminal.
func writerIsTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && term.IsTerminal(f.Fd())
}

// topPollTimeout bounds one poll: a server that does not answer shows as
// an error instead of a frozen screen.
func topPollTimeout(interval time.Duration) time.Duration { return max(5*time.Second, interval) }

// pollTopTimed is pollTop bounded by topPollTimeout.
func pollTopTimed(ctx context.Context, src topSource, prefix string, interval time.Duration) (*topPoll, error) {
	ctx, cancel := context.WithTimeout(ctx, topPollTimeout(interval))
	defer cancel()
	return pollTop(ctx, src, prefix, time.Now())
}

// sleepCtx waits d or until ctx is done.
func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// topOnce prints one snapshot: two polls o.interval apart, as text.
func topOnce(ctx context.Context, src topSource, out io.Writer, o topOptions, by topSort) error {
	prev, err := pollTopTimed(ctx, src, o.prefix, o.interval)
	if err != nil {
		return err
	}
	if err := sleepCtx(ctx, o.interval); err != nil {
		return err
	}
	cur, err := pollTopTimed(ctx, src, o.prefix, o.interval)
	if err != nil {
		return err
	}
	v := buildView(prev, cur)
	v.sort(by)
	_, err = io.WriteString(out, renderTopText(v))
	return err
}

// topWatch prints a snapshot every o.interval until ctx ends, from the
// second poll on (rates need two). A failed poll is reported on errw and
// retried at the next one.
func topWatch(ctx context.Context, src topSource, out, errw io.Writer, o topOptions, by topSort) error {
	var prev *topPoll
	for {
		cur, err := pollTopTimed(ctx, src, o.prefix, o.interval)
		switch {
		case ctx.Err() != nil:
			return nil
		case err != nil:
			fmt.Fprintf(errw, "spool: %s; retrying in %s\n", errorText(err), o.interval)
		case prev != nil:
			v := buildView(prev, cur)
			v.sort(by)
			fmt.Fprintf(out, "%s\n%s\n", cur.at.Format(time.RFC3339), renderTopText(v))
		}
		if err == nil {
			prev = cur
		}
		if sleepCtx(ctx, o.interval) != nil {
			return nil
		}
	}
}

// topModel is the bubbletea model of the interactive view.
type topModel struct {
	ctx      context.Context
	src      topSource
	prev     *topPoll
	cur      *topPoll
	screen   topScreen
	editOld  string // the filter before editing began
	width    int
	height   int
	pollFunc func(ctx context.Context, src topSource, prefix string, interval time.Duration) (*topPoll, error)
}

// topPolledMsg is the result of one poll.
type topPolledMsg struct {
	poll *topPoll
	err  error
}

// topTickMsg asks for the next poll.
type topTickMsg struct{}

func newTopModel(ctx context.Context, src topSource, server string, o topOptions, by topSort) *topModel {
	return &topModel{
		ctx:      ctx,
		src:      src,
		screen:   topScreen{server: server, interval: o.interval, sort: by, filter: o.prefix},
		width:    80,
		height:   24,
		pollFunc: pollTopTimed,
	}
}

// poll polls the server in the background; its result comes back as a
// topPolledMsg. It asks only for the topics the filter shows.
func (m *topModel) poll() tea.Cmd {
	ctx, src, interval, prefix := m.ctx, m.src, m.screen.interval, m.screen.filter
	return func() tea.Msg {
		p, err := m.pollFunc(ctx, src, prefix, interval)
		return topPolledMsg{p, err}
	}
}

func (m *topModel) Init() tea.Cmd { return m.poll() }

// view is the rows shown: the last poll's, filtered and sorted.
func (m *topModel) view() topView {
	v := buildView(m.prev, m.cur).filter(m.screen.filter)
	v.sort(m.screen.sort)
	return v
}

func (m *topModel) Update(msg tea.Msg) (tea.Model, tea.Cmd) {
	switch msg := msg.(type) {
	case tea.WindowSizeMsg:
		m.width, m.height = msg.Width, msg.Height
	case topPolledMsg:
		m.screen.err = msg.err
		if msg.err == nil {
			m.prev, m.cur = m.cur, msg.poll
			m.screen.updated = msg.poll.at
		}
		return m, tea.Tick(m.screen.interval, func(time.Time) tea.Msg { return topTickMsg{} })
	case topTickMsg:
		return m, m.poll()
	case tea.KeyPressMsg:
		if msg.String() == "ctrl+c" {
			return m, tea.Quit
		}
		if m.screen.editing {
			m.editKey(msg)
		} else if quit := m.key(msg); quit {
			return m, tea.Quit
		}
	}
	m.screen.scroll = min(m.screen.scroll, maxScroll(m.view(), m.height))
	return m, nil
}

// key handles a key outside the filter's editing; it reports whether to
// quit.
func (m *topModel) key(k tea.KeyPressMsg) bool {
	page := max(1, m.height-topFixedLines) / 2
	switch k.String() {
	case "q", "ctrl+c":
		return true
	case "s":
		m.screen.sort = m.screen.sort.next()
	case "/", "f":
		m.screen.editing, m.editOld = true, m.screen.filter
	case "down", "j":
		m.screen.scroll++
	case "up", "k":
		m.screen.scroll = max(0, m.screen.scroll-1)
	case "pgdown", "space", " ":
		m.screen.scroll += page
	case "pgup":
		m.screen.scroll = max(0, m.screen.scroll-page)
	case "home", "g":
		m.screen.scroll = 0
	case "end", "G":
		m.screen.scroll = maxScroll(m.view(), m.height)
	}
	return false
}

// editKey handles a key while the filter is typed: it applies as typed.
func (m *topModel) editKey(k tea.KeyPressMsg) {
	switch k.String() {
	case "enter":
		m.screen.editing = false
	case "esc":
		m.screen.editing, m.screen.filter = false, m.editOld
	case "ctrl+u":
		m.screen.filter = ""
	case "backspace":
		if r := []rune(m.screen.filter); len(r) > 0 {
			m.screen.filter = string(r[:len(r)-1])
		}
	default:
		if k.Text != "" && k.Mod&^tea.ModShift == 0 {
			m.screen.filter += k.Text
		}
	}
	m.screen.scroll = 0
}

func (m *topModel) View() tea.View {
	v := tea.NewView(renderTopScreen(m.view(), m.screen, m.width, m.height))
	v.AltScreen = true
	return v
}
