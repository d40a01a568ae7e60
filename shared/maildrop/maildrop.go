// Package maildrop keeps email messages caught by the local platform's SMTP
// catcher as files in one folder, one JSON file per message, so that the
// catcher (which writes them) and the admin mail route (which lists them)
// share nothing but the folder.
package maildrop

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"mime/quotedprintable"
	"net/mail"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

// Message is one caught message: the SMTP envelope and the raw message.
type Message struct {
	ID         string    `json:"id"`
	From       string    `json:"from"`
	To         []string  `json:"to"`
	ReceivedAt time.Time `json:"received_at"`
	Raw        []byte    `json:"raw"`
}

// Save writes m into dir (made when missing) as a new file, atomically: a
// reader never sees half a message.
func Save(dir string, m Message) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("mail folder %s: %w", dir, err)
	}
	b, err := json.Marshal(m)
	if err != nil {
		return fmt.Errorf("encode message %s: %w", m.ID, err)
	}
	name := fmt.Sprintf("%020d-%s.json", m.ReceivedAt.UnixNano(), m.ID)
	tmp, err := os.CreateTemp(dir, ".incoming-*")
	if err != nil {
		return fmt.Errorf("save message %s: %w", m.ID, err)
	}
	if _, err := tmp.Write(b); err != nil {
		tmp.Close()
		os.Remove(tmp.Name())
		return fmt.Errorf("save message %s: %w", m.ID, err)
	}
	if err := tmp.Close(); err != nil {
		os.Remove(tmp.Name())
		return fmt.Errorf("save message %s: %w", m.ID, err)
	}
	if err := os.Rename(tmp.Name(), filepath.Join(dir, name)); err != nil {
		os.Remove(tmp.Name())
		return fmt.Errorf("save message %s: %w", m.ID, err)
	}
	return nil
}

// List returns up to limit messages of dir, newest first; a missing folder
// holds none.
func List(dir string, limit int) ([]Message, error) {
	entries, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read mail folder %s: %w", dir, err)
	}
	var names []string
	for _, e := range entries {
		if !e.IsDir() && strings.HasSuffix(e.Name(), ".json") && !strings.HasPrefix(e.Name(), ".") {
			names = append(names, e.Name())
		}
	}
	slices.Sort(names)
	slices.Reverse(names)
	if limit > 0 && len(names) > limit {
		names = names[:limit]
	}
	out := make([]Message, 0, len(names))
	for _, n := range names {
		b, err := os.ReadFile(filepath.Join(dir, n))
		if err != nil {
			return nil, fmt.Errorf("read message %s: %w", n, err)
		}
		var m Message
		if err := json.Unmarshal(b, &m); err != nil {
			return nil, fmt.Errorf("decode message %s: %w", n, err)
		}
		out = append(out, m)
	}
	return out, nil
}

// Parsed is what a reader wants of a message: its headers decoded and its
// text and HTML bodies.
type Parsed struct {
	From    string `json:"from"`
	To      string `json:"to"`
	Subject string `json:"subject"`
	Text    string `json:"text"`
	HTML    string `json:"html"`
}

// Parse reads raw, a MIME message whose body is text, HTML, or
// multipart/alternative of both (quoted-printable, base64 or plain).
func Parse(raw []byte) (Parsed, error) {
	msg, err := mail.ReadMessage(bytes.NewReader(raw))
	if err != nil {
		return Parsed{}, fmt.Errorf("parse message: %w", err)
	}
	dec := new(mime.WordDecoder)
	subject, err := dec.DecodeHeader(msg.Header.Get("Subject"))
	if err != nil {
		subject = msg.Header.Get("Subject")
	}
	p := Parsed{From: msg.Header.Get("From"), To: msg.Header.Get("To"), Subject: subject}
	err = p.body(msg.Header.Get("Content-Type"), msg.Header.Get("Content-Transfer-Encoding"), msg.Body)
	return p, err
}

func (p *Parsed) body(contentType, encoding string, r io.Reader) error {
	mt, params, err := mime.ParseMediaType(contentType)
	if contentType == "" {
		mt, err = "text/plain", nil
	}
	if err != nil {
		return fmt.Errorf("content type %q: %w", contentType, err)
	}
	if strings.HasPrefix(mt, "multipart/") {
		mr := multipart.NewReader(r, params["boundary"])
		for {
			part, err := mr.NextRawPart()
			if errors.Is(err, io.EOF) {
				return nil
			}
			if err != nil {
				return fmt.Errorf("read part: %w", err)
			}
			if err := p.body(part.Header.Get("Content-Type"), part.Header.Get("Content-Transfer-Encoding"), part); err != nil {
				return err
			}
		}
	}
	switch strings.ToLower(encoding) {
	case "quoted-printable":
		r = quotedprintable.NewReader(r)
	case "base64":
		r = newBase64Reader(r)
	}
	b, err := io.ReadAll(r)
	if err != nil {
		return fmt.Errorf("read %s body: %w", mt, err)
	}
	switch mt {
	case "text/plain":
		p.Text += string(b)
	case "text/html":
		p.HTML += string(b)
	}
	return nil
}
