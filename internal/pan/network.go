package pan

// Network is a card network (brand) identified from the issuer identification
// number (IIN, the leading digits of a PAN).
type Network uint8

// Card networks the detector knows. The String form is stable: it is used in
// JSON, SARIF, metrics and audit events.
const (
	Unknown Network = iota
	Visa
	Mastercard
	Amex
	Discover
	JCB
	Diners
	UnionPay
	Maestro
	Mir
	RuPay
	Troy
	Verve
	Elo
	Hipercard
	UzCard
	Humo
	BelKart
	GPN
	TUnion
	InterPayment
	InstaPayment
	Mada

	numNetworks // keep last
)

var networkNames = [numNetworks]string{
	Unknown:      "unknown",
	Visa:         "visa",
	Mastercard:   "mastercard",
	Amex:         "amex",
	Discover:     "discover",
	JCB:          "jcb",
	Diners:       "diners",
	UnionPay:     "unionpay",
	Maestro:      "maestro",
	Mir:          "mir",
	RuPay:        "rupay",
	Troy:         "troy",
	Verve:        "verve",
	Elo:          "elo",
	Hipercard:    "hipercard",
	UzCard:       "uzcard",
	Humo:         "humo",
	BelKart:      "belkart",
	GPN:          "gpn",
	TUnion:       "china-t-union",
	InterPayment: "interpayment",
	InstaPayment: "instapayment",
	Mada:         "mada",
}

// String returns the lower-case network name ("visa", "mastercard", ...).
func (n Network) String() string {
	if n < numNetworks {
		return networkNames[n]
	}
	return "unknown"
}

// Networks returns every known network (Unknown excluded), in declaration order.
func Networks() []Network {
	out := make([]Network, 0, numNetworks-1)
	for n := Visa; n < numNetworks; n++ {
		out = append(out, n)
	}
	return out
}

// lengths builds a bit set of allowed PAN lengths.
func lengths(ls ...int) uint32 {
	var m uint32
	for _, l := range ls {
		m |= 1 << uint(l)
	}
	return m
}

// iinRule maps a range of six-digit prefixes to a network and its valid PAN
// lengths. Prefixes shorter than six digits are widened to six (e.g. Visa "4"
// is 400000-499999).
type iinRule struct {
	lo, hi uint32
	lens   uint32
	net    Network
}

// IINRange describes one IIN range of a network, for documentation, tests
// and generators: every PAN whose first six digits lie in [Lo, Hi] and whose
// length is in Lengths belongs to Network (unless an earlier range claims it).
type IINRange struct {
	Lo, Hi  uint32 // six-digit prefixes, inclusive
	Lengths []int
	Network Network
}

var (
	len16     = lengths(16)
	len16to19 = lengths(16, 17, 18, 19)
	len14to19 = lengths(14, 15, 16, 17, 18, 19)
	len12to19 = lengths(12, 13, 14, 15, 16, 17, 18, 19)
)

// iinRules is ordered: the first rule whose range holds the prefix and whose
// lengths hold the PAN length wins, so co-branded and nested ranges list the
// more specific network first. Sources: the networks' published IIN tables
// as summarised in ISO/IEC 7812 registries (2024).
var iinRules = [...]iinRule{
	{220000, 220499, len16to19, Mir},                 // Mir 2200-2204
	{213100, 213199, lengths(15), JCB},               // JCB's 15-digit 2131 (its 1800 range starts with 1: see firstDigitOK)
	{222100, 272099, len16, Mastercard},              // Mastercard 2-series 2221-2720
	{400000, 499999, lengths(13, 16, 19), Visa},      // Visa
	{340000, 349999, lengths(15), Amex},              // Amex 34
	{370000, 379999, lengths(15), Amex},              // Amex 37
	{384100, 384100, lengths(13, 16, 19), Hipercard}, // Hipercard 384100, 384140, 384160
	{384140, 384140, lengths(13, 16, 19), Hipercard},
	{384160, 384160, lengths(13, 16, 19), Hipercard},
	{300000, 305999, len14to19, Diners},              // Diners Club International 300-305
	{309500, 309599, len14to19, Diners},              // Diners 3095
	{360000, 369999, len14to19, Diners},              // Diners 36
	{380000, 399999, len14to19, Diners},              // Diners 38-39
	{352800, 358999, len16to19, JCB},                 // JCB 3528-3589 (incl. RuPay-JCB 353, 356)
	{510000, 559999, len16, Mastercard},              // Mastercard 51-55
	{506099, 506198, lengths(16, 18, 19), Verve},     // Verve
	{507865, 507964, lengths(16, 18, 19), Verve},     // Verve
	{650002, 650027, lengths(16, 18, 19), Verve},     // Verve
	{508000, 508999, len16, RuPay},                   // RuPay 508
	{500000, 509999, len12to19, Maestro},             // Maestro 50 (incl. Dankort 5019)
	{560000, 589999, len12to19, Maestro},             // Maestro 56-58
	{601100, 601199, len16to19, Discover},            // Discover 6011
	{622126, 622925, len16to19, Discover},            // Discover / UnionPay co-brand
	{620000, 629999, len16to19, UnionPay},            // UnionPay 62
	{606282, 606282, lengths(13, 16, 19), Hipercard}, // Hipercard 606282
	{600000, 609999, len16, RuPay},                   // RuPay 60
	{644000, 649999, len16to19, Discover},            // Discover 644-649
	{650000, 659999, len16to19, Discover},            // Discover 65 (incl. RuPay co-brand)
	{630400, 630499, len12to19, Maestro},             // Maestro 6304
	{675900, 675999, len12to19, Maestro},             // Maestro UK 6759
	{676100, 676399, len12to19, Maestro},             // Maestro 6761-6763
	{676770, 676770, len12to19, Maestro},             // Maestro UK 676770
	{676774, 676774, len12to19, Maestro},             // Maestro UK 676774
	{979200, 979299, len16, Troy},                    // Troy 9792
	{810000, 829999, len16, RuPay},                   // RuPay 81, 82
	{810000, 817199, len16to19, UnionPay},            // UnionPay 8100-8171 (16 digits: RuPay's above)
	{670300, 670399, len12to19, Maestro},             // Bancontact (Maestro) 6703
	{636297, 636297, len16, Elo},                     // Elo 636297, 636368 (its other ranges are inside Visa's, Maestro's, Discover's)
	{636368, 636368, len16, Elo},
	{636000, 636999, len16to19, InterPayment}, // InterPayment 636
	{637000, 639999, len16, InstaPayment},     // InstaPayment 637-639
	{310000, 319999, lengths(19), TUnion},     // China T-Union 31
	{860000, 860099, len16, UzCard},           // UzCard 8600
	{986000, 986099, len16, Humo},             // Humo 9860
	{911200, 911299, len16, BelKart},          // BelKart 9112
	{936000, 936099, len16to19, GPN},          // GPN (Indonesia) 9360
	{968200, 968299, len16, Mada},             // mada 9682
}

// IINRanges returns the IIN table the detector uses, in match order.
func IINRanges() []IINRange {
	out := make([]IINRange, 0, len(iinRules))
	for _, r := range iinRules {
		var ls []int
		for l := 12; l <= 19; l++ {
			if r.lens&(1<<uint(l)) != 0 {
				ls = append(ls, l)
			}
		}
		out = append(out, IINRange{Lo: r.lo, Hi: r.hi, Lengths: ls, Network: r.net})
	}
	return out
}

// firstDigitOK says which leading digits can start a PAN at all (0, 1 and 7
// never do among the supported networks; 1 is UATP, deliberately excluded
// because every current Unix timestamp starts with 1). It is the cheap
// first filter before the rule table.
var firstDigitOK = [10]bool{2: true, 3: true, 4: true, 5: true, 6: true, 8: true, 9: true}

// rulesByFirst holds iinRules by the first digit of their range (every
// range lies under one first digit), in match order: a lookup reads only the
// rules its PAN could match.
var rulesByFirst = func() (by [10][]iinRule) {
	for _, r := range iinRules {
		if r.lo/100000 != r.hi/100000 {
			panic("pan: an IIN range spans two first digits")
		}
		by[r.lo/100000] = append(by[r.lo/100000], r)
	}
	return by
}()

// network returns the network of a PAN with the given six-digit prefix and
// length, or Unknown.
func network(prefix6 uint32, n int) Network {
	bit := uint32(1) << uint(n)
	rules := rulesByFirst[prefix6/100000]
	for i := range rules {
		r := &rules[i]
		if prefix6 >= r.lo && prefix6 <= r.hi && r.lens&bit != 0 {
			return r.net
		}
	}
	return Unknown
}

// luhnDouble[d] is the Luhn contribution of a doubled digit d.
var luhnDouble = [10]uint8{0, 2, 4, 6, 8, 1, 3, 5, 7, 9}

// Luhn reports whether digits (ASCII '0'-'9' only) pass the Luhn (mod 10)
// check. It returns false for empty input or any non-digit byte.
func Luhn(digits []byte) bool {
	if len(digits) == 0 {
		return false
	}
	sum := 0
	dbl := false
	for i := len(digits) - 1; i >= 0; i-- {
		d := digits[i] - '0'
		if d > 9 {
			return false
		}
		if dbl {
			sum += int(luhnDouble[d])
		} else {
			sum += int(d)
		}
		dbl = !dbl
	}
	return sum%10 == 0
}

// Identify tells whether digits (ASCII, digits only) is a Luhn-valid PAN
// inside a known IIN range with a length valid for its network, and which
// network it belongs to.
func Identify(digits []byte) (Network, bool) {
	n := len(digits)
	if n < MinDigits || n > MaxDigits {
		return Unknown, false
	}
	for _, c := range digits {
		if c-'0' > 9 {
			return Unknown, false
		}
	}
	return identify(digits)
}

// identify is Identify without the input checks (digits are known ASCII
// digits, 12-19 of them).
func identify(digits []byte) (Network, bool) {
	if !firstDigitOK[digits[0]-'0'] {
		return Unknown, false
	}
	p := uint32(digits[0]-'0')*100000 + uint32(digits[1]-'0')*10000 + uint32(digits[2]-'0')*1000 +
		uint32(digits[3]-'0')*100 + uint32(digits[4]-'0')*10 + uint32(digits[5]-'0')
	net := network(p, len(digits))
	if net == Unknown || !Luhn(digits) {
		return Unknown, false
	}
	return net, true
}

// Limits of a PAN's length in digits (ISO/IEC 7812).
const (
	MinDigits = 12
	MaxDigits = 19
)
