package pantest

import (
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Case is one entry of the adversarial table: a way a person or a program
// writes (or hides) a card number, or a look-alike that is not one.
type Case struct {
	Name string
	Text string
	PANs int    // card numbers in Text (0 for a look-alike)
	PAN  string // the card number's digits (ASCII), "" for a look-alike
}

// Published test card numbers (no real accounts).
const (
	visa16 = "4111111111111111"
	amex15 = "378282246310005"
	mc16   = "5555555555554444"
)

// Encoders of one digit string.
func each(d string, f func(byte) string) string {
	var b strings.Builder
	for i := 0; i < len(d); i++ {
		b.WriteString(f(d[i]))
	}
	return b.String()
}

// digitsOnly applies f to digits and keeps other characters.
func digitsOnly(f func(byte) string) func(byte) string {
	return func(c byte) string {
		if c < '0' || c > '9' {
			return string(c)
		}
		return f(c)
	}
}

func script(d string, zero rune) string {
	return each(d, func(c byte) string {
		if c < '0' || c > '9' {
			return string(c)
		}
		return string(zero + rune(c-'0'))
	})
}

// Group prints d in groups of 4 (4-6-5 for 15 digits) joined by sep.
func Group(d, sep string) string {
	var parts []string
	i := 0
	for _, l := range Groups(len(d)) {
		parts = append(parts, d[i:i+l])
		i += l
	}
	return strings.Join(parts, sep)
}

func between(d, sep string) string {
	return strings.Join(strings.Split(d, ""), sep)
}

// visa19 is a Luhn-valid 19-digit Visa number.
var visa19 = func() string {
	p := "411111111111111100"
	return p + string(CheckDigit([]byte(p)))
}()

// Adversarial returns the adversarial table: every common way card numbers
// reach logs, URLs, JSON, XML, CSV, SQL, stack traces and chat transcripts,
// then look-alikes that must stay untouched.
func Adversarial() []Case {
	v := visa16
	pos := []Case{
		{"glued-prefix-word", "cardnumber" + v, 1, v},
		{"glued-PAN", "PAN" + v, 1, v},
		{"go-parse-error", `strconv.ParseInt: parsing "` + v + `x": invalid syntax`, 1, v},
		{"glued-both-sides", "x" + v + "y", 1, v},
		{"glued-amex", "AMEX" + amex15 + "exp", 1, amex15},
		{"tab", Group(v, "\t"), 1, v},
		{"two-spaces", Group(v, "  "), 1, v},
		{"spaced-dash", Group(v, " - "), 1, v},
		{"nbsp", Group(v, "\u00a0"), 1, v},
		{"narrow-nbsp", Group(v, "\u202f"), 1, v},
		{"thin-space", Group(v, "\u2009"), 1, v},
		{"ideographic-space", Group(v, "\u3000"), 1, v},
		{"zero-width-space", Group(v, "\u200b"), 1, v},
		{"zwsp-every-digit", between(v, "\u200b"), 1, v},
		{"zwnj-zwj-wj-bom", "4\u200c1\u200d1\u20601\ufeff111111111111", 1, v},
		{"soft-hyphen", between(v, "\u00ad"), 1, v},
		{"colon", Group(v, ":"), 1, v},
		{"slash", Group(v, "/"), 1, v},
		{"underscore", Group(v, "_"), 1, v},
		{"en-dash", Group(v, "\u2013"), 1, v},
		{"em-dash", Group(v, " \u2014 "), 1, v},
		{"minus-sign", Group(v, "\u2212"), 1, v},
		{"mixed-separators", "4111 1111-1111.1111", 1, v},
		{"mixed-separators-2", "4111\t1111 - 1111/1111", 1, v},
		{"digit-per-space", between(v, " "), 1, v},
		{"digit-per-dash", between(v, "-"), 1, v},
		{"line-wrapped", "card: 4111 1111\n1111 1111 (exp 12/27)", 1, v},
		{"line-wrapped-crlf-indent", "41111111\r\n    11111111", 1, v},
		{"json-escape", `{"pan":"` + each(v, func(c byte) string { return `\u003` + string(c) }) + `"}`, 1, v},
		{"json-escaped-zwsp", Group(v, `\u200B`), 1, v},
		{"json-double-escape", `{"log":"{\"pan\":\"` + each(v, func(c byte) string { return `\\u003` + string(c) }) + `\"}"}`, 1, v},
		{"json-escaped-separators", `"` + Group(v, `\u0020`) + `"`, 1, v},
		{"json-escaped-tab", `"` + Group(v, `\t`) + `"`, 1, v},
		{"json-escape-fullwidth", each(v, func(c byte) string { return fmt.Sprintf(`\uFF1%c`, c) }), 1, v},
		{"hex-escape", each(v, func(c byte) string { return `\x3` + string(c) }), 1, v},
		{"percent", "q=" + each(v, func(c byte) string { return "%3" + string(c) }) + "&x=1", 1, v},
		{"percent-double", "q=" + each(v, func(c byte) string { return "%253" + string(c) }), 1, v},
		{"percent-space-groups", "card=" + Group(v, "%20") + "&exp=12%2F27", 1, v},
		{"percent-double-space-groups", "card=" + Group(v, "%2520"), 1, v},
		{"percent-plus-groups", "card=" + Group(v, "+") + "&", 1, v},
		{"percent-fullwidth", each(v, func(c byte) string { return "%EF%BC%9" + string(c) }), 1, v},
		{"html-entity", "<td>" + each(v, func(c byte) string { return "&#" + strconv.Itoa(int(c)) + ";" }) + "</td>", 1, v},
		{"html-hex-entity", each(v, func(c byte) string { return "&#x3" + string(c) + ";" }), 1, v},
		{"html-double-escaped", each(v, func(c byte) string { return "&amp;#" + strconv.Itoa(int(c)) + ";" }), 1, v},
		{"html-nbsp-groups", Group(v, "&nbsp;"), 1, v},
		{"fullwidth", script(v, '０'), 1, v},
		{"arabic-indic", script(v, '٠'), 1, v},
		{"extended-arabic-indic", script(v, '۰'), 1, v},
		{"devanagari", script(v, '०'), 1, v},
		{"bengali-grouped", script(Group(v, " "), '০'), 1, v},
		{"mixed-scripts", "4١1१１11111111111", 1, v},
		{"star-prefix", "*" + v, 1, v},
		{"plus-prefix", "+" + v, 1, v},
		{"hash-prefix", "#" + v, 1, v},
		{"amount-tail", v + ".00", 1, v},
		{"grouped-amount-tail", Group(v, " ") + ".00", 1, v},
		{"quoted", "'" + v + "'", 1, v},
		{"brackets", "[" + v + "]", 1, v},
		{"key-equals", "card=" + v, 1, v},
		{"key-colon", "card:" + v, 1, v},
		{"sql-insert", "INSERT INTO cards VALUES (42, '" + v + "', 'EUR');", 1, v},
		{"csv", "2026-11-23," + v + ",EUR,12.50", 1, v},
		{"xml", "<pan>" + Group(v, " ") + "</pan>", 1, v},
		{"xml-attr", `<card number="` + v + `"/>`, 1, v},
		{"json-number", `{"pan":` + v + `}`, 1, v},
		{"stack-trace", "\tat com.example.Pay.charge(card=" + v + ", amount=12.50)", 1, v},
		{"chat", "my card is " + Group(v, " ") + " exp 12/27 cvv 123", 1, v},
		{"url-path", "/v1/cards/" + v + "/charges", 1, v},
		{"underscore-glued", "card_" + v + "_exp", 1, v},
		{"mastercard-dashes", Group(mc16, "-"), 1, mc16},
		{"amex-grouped", Group(amex15, " "), 1, amex15},
		{"visa-19", Group(visa19, " "), 1, visa19},
		{"comma-groups", "card " + Group(v, ",") + " exp", 1, v},
		{"semicolon-groups", Group(v, ";"), 1, v},
		{"pipe-groups", "| " + Group(v, "|") + " |", 1, v},
		{"middle-dot-groups", Group(v, "\u00b7"), 1, v},
		{"utf16le", "c\x00a\x00r\x00d\x00 \x00" + each(v, func(c byte) string { return string(c) + "\x00" }), 1, v},
		{"utf16le-grouped", each(Group(v, " "), func(c byte) string { return string(c) + "\x00" }), 1, v},
		{"two-pans", v + "," + mc16, 2, v},
		{"pan-in-number-list", "qty 2 " + Group(v, " ") + " 1", 1, v},
		{"pan-after-order-id", "order 18 " + Group(v, " "), 1, v},
		{"js-brace-escape", `"` + each(v, func(c byte) string { return `\u{3` + string(c) + `}` }) + `"`, 1, v},
		{"rust-brace-escape-grouped", each(Group(v, " "), digitsOnly(func(c byte) string { return `\u{00003` + string(c) + `}` })), 1, v},
		{"python-U-escape", `'` + each(v, func(c byte) string { return `\U0000003` + string(c) }) + `'`, 1, v},
		{"js-percent-u", "q=" + each(v, func(c byte) string { return "%u003" + string(c) }), 1, v},
		{"octal-escape", `$'` + each(v, func(c byte) string { return fmt.Sprintf(`\%03o`, c) }) + `'`, 1, v},
		{"octal-escape-grouped", each(Group(v, "-"), func(c byte) string { return fmt.Sprintf(`\%03o`, c) }), 1, v},
		{"html-ref-no-semicolon", "<p>" + each(v, func(c byte) string { return "&#" + strconv.Itoa(int(c)) }) + "</p>", 1, v},
		{"html-hex-ref-no-semicolon", each(v, func(c byte) string { return "&#x3" + string(c) }) + " ", 1, v},
		{"html-ref-leading-zeros", each(v, func(c byte) string { return "&#00" + strconv.Itoa(int(c)) + ";" }), 1, v},
		{"html-hex-ref-leading-zeros", each(v, func(c byte) string { return "&#x003" + string(c) + ";" }), 1, v},
		{"hex-ascii-0x", "SELECT * FROM t WHERE pan = 0x" + hex.EncodeToString([]byte(v)), 1, v},
		{"hex-ascii-mysql", "INSERT INTO c VALUES (X'" + strings.ToUpper(hex.EncodeToString([]byte(v))) + "');", 1, v},
		{"hex-ascii-bytea", `{"data":"\\x` + hex.EncodeToString([]byte(Group(v, " "))) + `"}`, 1, v},
		{"hex-ascii-bytea-plain", `\x` + hex.EncodeToString([]byte(v)), 1, v},
		{"hex-ascii-json", "payload=" + hex.EncodeToString([]byte(`{"pan":"`+v+`","exp":"12/27"}`)), 1, v},
		{"hex-ascii-amex", "blob " + hex.EncodeToString([]byte(amex15)) + " end", 1, amex15},
		{"base64", "data: " + base64.StdEncoding.EncodeToString([]byte(v)), 1, v},
		{"base64-grouped", base64.StdEncoding.EncodeToString([]byte(Group(v, " "))), 1, v},
		{"base64-json", `{"body":"` + base64.StdEncoding.EncodeToString([]byte(`{"pan":"`+v+`","cvv":"123"}`)) + `"}`, 1, v},
		{"base64-basic-auth", "Authorization: Basic " + base64.StdEncoding.EncodeToString([]byte("merchant:"+v)), 1, v},
		{"base64-jwt", "Bearer eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9." +
			base64.RawURLEncoding.EncodeToString([]byte(`{"sub":"42","card":"`+Group(mc16, "-")+`","iat":1732361330}`)) +
			".SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c", 1, mc16},
		{"base64-offset-1", base64.StdEncoding.EncodeToString([]byte("x" + amex15 + "y")), 1, amex15},
		{"base64-offset-2", base64.RawStdEncoding.EncodeToString([]byte("xy" + v)), 1, v},
		{"base64-two-pans", base64.StdEncoding.EncodeToString([]byte(v + " and " + mc16)), 2, v},
		{"base64-two-pans-one-group", base64.StdEncoding.EncodeToString([]byte(v + "," + mc16)), 1, v},
		{"csv-quoted-split", `"id","a","b","c","d"` + "\n" + `"17","` + Group(v, `","`) + `"`, 1, v},
		{"json-array-split", `{"pan":["` + Group(v, `", "`) + `"]}`, 1, v},
		{"python-list-split", `['` + Group(v, `', '`) + `']`, 1, v},
		{"sql-concat-split", `SELECT '` + Group(v, `' || '`) + `' FROM dual`, 1, v},
		{"json-escaped-quotes-split", `"[\"` + Group(v, `\",\"`) + `\"]"`, 1, v},
		{"html-span-groups", `<p>Card ` + Group(v, `<span>`)[:4] + "<span>" + v[4:8] + "</span>" + v[8:12] + " " + v[12:] + "</p>", 1, v},
		{"html-table-groups", "<tr><td>" + Group(v, "</td><td>") + "</td></tr>", 1, v},
		{"html-br-groups", Group(v, "<br/>"), 1, v},
		{"html-b-wrapped", "<b>" + Group(mc16, "</b> <b>") + "</b>", 1, mc16},
		{"qp-soft-break-crlf", "Content-Transfer-Encoding: quoted-printable\r\n\r\ncard " + Group(v, " ")[:12] + "=\r\n" + Group(v, " ")[12:] + " exp", 1, v},
		{"qp-soft-break-lf", "card: " + v[:10] + "=\n" + v[10:], 1, v},
		{"mixed-new-escapes", `\u{34}%u0031\U00000031\061&#49&#x31;` + v[6:], 1, v},
	}
	neg := []Case{
		{"luhn-invalid", "4111111111111112", 0, ""},
		{"luhn-invalid-grouped", "4111 1111 1111 1112", 0, ""},
		{"no-network", "7111111111111111" + " " + "1111111111111117", 0, ""},
		{"unix-seconds", "ts=1732361330", 0, ""},
		{"unix-millis", "ts=1732361330123", 0, ""},
		{"unix-micros", "ts=1732361330123456", 0, ""},
		{"unix-nanos", "ts=1732361330123456789", 0, ""},
		{"iso-time", "2026-11-23T11:28:50.123456789+01:00", 0, ""},
		{"uuid", "550e8400-e29b-41d4-a716-446655440000", 0, ""},
		{"uuid-digits", "12345678-1234-1234-1234-123456789012", 0, ""},
		{"sha256", "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08", 0, ""},
		{"hex-with-pan-digits", "9f86d0" + v + "a1b2", 0, ""},
		{"hex-literal", "0x" + v, 0, ""},
		{"iban-de", "DE89 3704 0044 0532 0130 00", 0, ""},
		{"iban-fr", "FR76 3000 6000 0112 3456 7890 189", 0, ""},
		{"iban-gb", "GB29NWBK60161331926819", 0, ""},
		{"phone-uk", "+44 20 7946 0958", 0, ""},
		{"phone-e164", "+4915123456789", 0, ""},
		{"phone-us", "(415) 555-0123", 0, ""},
		{"ip-port", "192.168.100.200:8443", 0, ""},
		{"ip-port-2", "222.100.123.200:4432", 0, ""},
		{"version", "v4.111.1111.1111", 0, ""},
		{"amount", "total 1234567.89 EUR, 12,345,678.90 USD", 0, ""},
		{"csv-numbers", "1001,1002,1003,1004;1005|1006", 0, ""},
		{"thousands", "balance 1,234,567,890.12", 0, ""},
		{"fraction", "score=0." + v, 0, ""},
		{"masked-first6last4", "411111******1111", 0, ""},
		{"masked-last4", "************1111", 0, ""},
		{"masked-grouped", "4111 11** **** 1111", 0, ""},
		{"token", "tok_v1_abcdefghijklmnopqrstuvwxyzABCDEF", 0, ""},
		{"short", "4111 1111 111", 0, ""},
		{"too-long", v + "0000", 0, ""},
		{"sha1", "da39a3ee5e6b4b0d3255bfef95601890afd80709", 0, ""},
		{"sha256-digit-heavy", "3431313131313131a31313131313131313131313131313131313131313131310", 0, ""},
		{"hex-ascii-not-pan", "0x" + hex.EncodeToString([]byte("2026-11-23 11:28:50 order 12345678")), 0, ""},
		{"hex-ascii-luhn-invalid", "0x" + hex.EncodeToString([]byte("4111111111111112")), 0, ""},
		{"hex-dump-non-digits", "48 65 6c 6c 6f 2c 20 77 6f 72 6c 64 21 0a 00 ff", 0, ""},
		{"hex-ascii-timestamp", hex.EncodeToString([]byte("1732361330123456")), 0, ""},
		{"jwt-without-pan", "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIiwibmFtZSI6IkpvaG4gRG9lIiwiaWF0IjoxNTE2MjM5MDIyfQ.SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c", 0, ""},
		{"base64-digits-not-pan", base64.StdEncoding.EncodeToString([]byte("1732361330123 1001 1002 1003 4111111111111112")), 0, ""},
		{"base64-random", "k7/Q2mZ+x9TqLw3YhN0vR8sJ1bEaUcFgPo6iKd4nMl5tVyXrWzO", 0, ""},
		{"base64-uuid", base64.StdEncoding.EncodeToString([]byte("550e8400-e29b-41d4-a716-446655440000")), 0, ""},
		{"upper-case-prose", "NOT NULL MONO NOON MNOP OMNI NONE MOMO", 0, ""},
		{"csv-quoted-small-numbers", `"1001","1002","1003","1004","1005"`, 0, ""},
		{"csv-quoted-tiny-numbers", `"12","345","6","78","901","23","45","678","9","10"`, 0, ""},
		{"sql-in-list", `WHERE id IN ('101', '202', '303', '404', '505', '606')`, 0, ""},
		{"json-array-ids", `{"ids":["2026","1123","1128","5012"],"n":4}`, 0, ""},
		{"html-amounts-table", "<tr><td>12.50</td><td>1,234.00</td><td>99.99</td><td>7.00</td></tr>", 0, ""},
		{"html-tag-with-digits", `<img width="1600" height="1200" src="a.png">`, 0, ""},
		{"qp-equals-digits", "a=3D1234 b=3D5678 c=3D9012 d=3D3456", 0, ""},
		{"windows-path-digits", `C:\\logs\\2026\\11\\23\\app.log`, 0, ""},
		{"html-refs-not-digits", "&#123&#125 &#x41;&#66 \\u{1F600} %u00e9 \\101\\102", 0, ""},
		{"octal-non-digits", `\101\102\103\104\105\106\107\110\111\112\113\114\115\116\117\120`, 0, ""},
	}
	return append(pos, neg...)
}

// Decode returns s with every digit encoding the detector sees through
// decoded to ASCII and invisible characters removed, for leak checks:
// JSON and byte escapes, percent escapes (twice), HTML numeric references
// (and &amp;), and Unicode decimal digits of any script.
func Decode(s string) string {
	for range 3 {
		s = decodeOnce(s)
	}
	var b strings.Builder
	for _, r := range s {
		switch {
		case r == 0x200B || r == 0x200C || r == 0x200D || r == 0x2060 || r == 0xFEFF || r == 0xAD:
		case unicode.IsDigit(r) && r >= 0x80:
			b.WriteRune('0' + ndDigit(r))
		default:
			b.WriteRune(r)
		}
	}
	return b.String()
}

func ndDigit(r rune) rune {
	z := r
	for unicode.IsDigit(z - 1) {
		z--
	}
	return (r - z) % 10
}

func decodeOnce(s string) string {
	var out []byte
	for i := 0; i < len(s); {
		c := s[i]
		switch {
		case c == '%' && i+2 < len(s) && isHex(s[i+1]) && isHex(s[i+2]):
			v, _ := strconv.ParseUint(s[i+1:i+3], 16, 8)
			out = append(out, byte(v))
			i += 3
			continue
		case c == '\\' && i+3 < len(s) && s[i+1] == 'u' && s[i+2] == '{' && strings.IndexByte(s[i:], '}') > 3:
			j := strings.IndexByte(s[i:], '}')
			if v, err := strconv.ParseUint(s[i+3:i+j], 16, 32); err == nil {
				out = utf8.AppendRune(out, rune(v))
				i += j + 1
				continue
			}
		case c == '\\' && i+9 < len(s) && s[i+1] == 'U' && allHex(s[i+2:i+10]):
			v, _ := strconv.ParseUint(s[i+2:i+10], 16, 32)
			out = utf8.AppendRune(out, rune(v))
			i += 10
			continue
		case c == '\\' && i+3 < len(s) && isOctal(s[i+1]) && isOctal(s[i+2]) && isOctal(s[i+3]):
			v, _ := strconv.ParseUint(s[i+1:i+4], 8, 16)
			out = append(out, byte(v))
			i += 4
			continue
		case i+5 < len(s) && (c == '%' && (s[i+1] == 'u' || s[i+1] == 'U') || c == '\\' && s[i+1] == 'u') && allHex(s[i+2:i+6]):
			v, _ := strconv.ParseUint(s[i+2:i+6], 16, 32)
			out = utf8.AppendRune(out, rune(v))
			i += 6
			continue
		case c == '\\' && i+3 < len(s) && s[i+1] == 'x' && allHex(s[i+2:i+4]):
			v, _ := strconv.ParseUint(s[i+2:i+4], 16, 8)
			out = append(out, byte(v))
			i += 4
			continue
		case c == '\\' && i+1 < len(s) && s[i+1] == '\\':
			out = append(out, '\\')
			i += 2
			continue
		case c == '&':
			if strings.HasPrefix(s[i:], "&amp;") {
				out = append(out, '&')
				i += 5
				continue
			}
			if i+2 < len(s) && s[i+1] == '#' {
				// The reference ends at ';' or at the first character that
				// cannot continue it (HTML5 decodes "&#52" too).
				j, semi := 2, 0
				hexa := j < len(s[i:]) && (s[i+j] == 'x' || s[i+j] == 'X')
				if hexa {
					j++
				}
				for i+j < len(s) && (s[i+j] >= '0' && s[i+j] <= '9' || hexa && isHex(s[i+j])) {
					j++
				}
				if i+j < len(s) && s[i+j] == ';' {
					semi = 1
				}
				num := s[i+2 : i+j]
				j += semi - 1
				if num == "" || num == "x" || num == "X" {
					break
				}
				base := 10
				if num[0] == 'x' || num[0] == 'X' {
					num, base = num[1:], 16
				}
				if v, err := strconv.ParseUint(num, base, 32); err == nil {
					out = utf8.AppendRune(out, rune(v))
					i += j + 1
					continue
				}
			}
		}
		out = append(out, c)
		i++
	}
	return string(out)
}

func isHex(c byte) bool {
	return c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F'
}

func allHex(s string) bool {
	for i := 0; i < len(s); i++ {
		if !isHex(s[i]) {
			return false
		}
	}
	return true
}

// Leaks reports whether text, once decoded (see Decode) and stripped of
// everything but digits and '*', still holds the digits of pan in a row.
func Leaks(text, pan string) bool {
	d := Decode(text)
	d += " " + Decode(nested(d))
	var b strings.Builder
	for i := 0; i < len(d); i++ {
		if c := d[i]; c >= '0' && c <= '9' || c == '*' {
			b.WriteByte(c)
		}
	}
	return strings.Contains(b.String(), pan)
}

func isOctal(c byte) bool { return c >= '0' && c <= '7' }

// nested returns the decodings of the hex tokens (both alignments) and
// base64 tokens (all four alignments, both alphabets) of s, joined by
// spaces, so leak checks see PANs hidden in them.
func nested(s string) string {
	var out []string
	isB64 := func(c byte) bool {
		return c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '+' || c == '/' || c == '-' || c == '_'
	}
	for i := 0; i < len(s); {
		j := i
		for j < len(s) && isB64(s[j]) {
			j++
		}
		if j == i {
			i++
			continue
		}
		tok := s[i:j]
		i = j
		for off := 0; off < 4 && off < len(tok); off++ {
			t := tok[off:]
			t = t[:len(t)-len(t)%4]
			for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.URLEncoding} {
				if b, err := enc.DecodeString(t); err == nil {
					out = append(out, string(b))
				}
			}
		}
		for off := 0; off < 2 && off < len(tok); off++ {
			h := tok[off:]
			k := 0
			for k < len(h) && isHex(h[k]) {
				k++
			}
			h = h[:k-k%2]
			if b, err := hex.DecodeString(h); err == nil {
				out = append(out, string(b))
			}
		}
	}
	return strings.Join(out, " ")
}
