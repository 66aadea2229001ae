//go:build amd64 && !purego

#include "textflag.h"

// Separator classes by nibble: bit 0 for 0x00 0x09-0x0d, bit 1 for
// 0x20 0x2b 0x2c 0x2d 0x2e 0x2f, bit 2 for 0x3a 0x3b, bit 3 for 0x5f, bit 4
// for 0x7c.
DATA sepLo<>+0(SB)/8, $0x0000000000000003
DATA sepLo<>+8(SB)/8, $0x0a02031307050100
GLOBL sepLo<>(SB), RODATA|NOPTR, $16
DATA sepHi<>+0(SB)/8, $0x1000080004020001
DATA sepHi<>+8(SB)/8, $0x0000000000000000
GLOBL sepHi<>(SB), RODATA|NOPTR, $16

// Block filter classes by nibble (see filterSet in detector.go): bit 0
// digits, bit 1 '%' '&', bit 2 '\\', bits 3-6 the UTF-8 lead bytes in rows
// 0xC_, 0xD_, 0xE_, 0xF_ that can start a decimal digit or a separator
// (C2, CD, D8, D9, DB, DF, E0-E3, EA, EF, F0, F3). Byte x is in the set iff
// intLo[x&15] & intHi[x>>4] & 0x7f != 0. Bit 7 is 'M' 'N' 'O' (b64Sig),
// which only feed the base64 signal (b64Signal).
DATA intLo<>+0(SB)/8, $0x0103030161292161
DATA intLo<>+8(SB)/8, $0xb080880410201111
GLOBL intLo<>(SB), RODATA|NOPTR, $16
DATA intHi<>+0(SB)/8, $0x0000048001020000
DATA intHi<>+8(SB)/8, $0x4020100800000000
GLOBL intHi<>(SB), RODATA|NOPTR, $16
DATA class7f<>+0(SB)/8, $0x7f7f7f7f7f7f7f7f
DATA class7f<>+8(SB)/8, $0x7f7f7f7f7f7f7f7f
DATA class7f<>+16(SB)/8, $0x7f7f7f7f7f7f7f7f
DATA class7f<>+24(SB)/8, $0x7f7f7f7f7f7f7f7f
GLOBL class7f<>(SB), RODATA|NOPTR, $32


#define BCAST(imm, x, y) MOVQ imm, R10; VMOVQ R10, x; VPBROADCASTQ x, y

#define SHIFTIN(src, prev, k, dst) MOVQ src, dst; SHLQ $k, dst; MOVQ prev, R15; SHRQ $(64-k), R15; ORQ R15, dst

// func candMasksAVX2(p *byte, n int, pd, ps uint64, dst *byte) (off int, c, d, s uint64)
//
// Scans 64-byte blocks p[off:off+64] for off = 0, 64, ... < n (n is a
// multiple of 64) and stops at the first block with a candidate (see
// candidates in detector.go; pd and ps are the digit and separator masks of
// the 64 bytes before p). It returns that block's candidates c and its
// masks d (ASCII digits) and s (the ASCII separators, asciiSep); bit
// k is byte off+k. If no block qualifies, off == n and the masks are 0.
// Blocks without a byte of filterSet (a digit, '%', '\\', '&' or a UTF-8
// lead byte that can start a digit or a separator) cost two loads, two
// nibble lookups and one VPTEST per 64 bytes.
//
// Digits: x+0x50 lands in 0x80..0x89 (signed -128..-119) exactly for
// '0'..'9'.
// With dst non-nil, every block scanned (the returned one included) is
// also stored to dst[off:off+64], so Mask copies its input while it is in
// registers.
// Constants are moved with VMOVQ (VEX): a legacy-SSE MOVQ after a 256-bit
// instruction stalls on the AVX/SSE state transition.
TEXT ·candMasksAVX2(SB), NOSPLIT, $0-72
	MOVQ p+0(FP), SI
	MOVQ n+8(FP), DX
	MOVQ pd+16(FP), R11
	MOVQ ps+24(FP), R12
	XORQ DI, DI
	BCAST($0x5050505050505050, X0, Y0)
	BCAST($0x8a8a8a8a8a8a8a8a, X1, Y1)
	BCAST($0x7e7e7e7e7e7e7e7e, X6, Y6)
	VBROADCASTI128 intLo<>(SB), Y4
	VBROADCASTI128 intHi<>(SB), Y5
	VBROADCASTI128 sepLo<>(SB), Y12
	VBROADCASTI128 sepHi<>(SB), Y13
	BCAST($0x0f0f0f0f0f0f0f0f, X14, Y14)
	VPXOR Y15, Y15, Y15

loop:
	CMPQ DI, DX
	JAE  none
	VMOVDQU (SI)(DI*1), Y2
	VMOVDQU 32(SI)(DI*1), Y9
	MOVQ dst+32(FP), R10
	TESTQ R10, R10
	JZ   nostore
	VMOVDQU Y2, (R10)(DI*1)
	VMOVDQU Y9, 32(R10)(DI*1)

nostore:
	// Filter classes of both halves by nibble lookup: Y7 and Y11.
	VPAND    Y14, Y2, Y3
	VPSRLW   $4, Y2, Y8
	VPAND    Y14, Y8, Y8
	VPSHUFB  Y3, Y4, Y7
	VPSHUFB  Y8, Y5, Y8
	VPAND    Y8, Y7, Y7
	VPAND    Y14, Y9, Y10
	VPSRLW   $4, Y9, Y8
	VPAND    Y14, Y8, Y8
	VPSHUFB  Y10, Y4, Y11
	VPSHUFB  Y8, Y5, Y8
	VPAND    Y8, Y11, Y11
	VPOR     Y7, Y11, Y8
	// The base64 signal (b64Signal) needs an 'M' 'N' or 'O' (bit 7) four
	// or eight (UTF-16LE) bytes after another: mo in R8, which found
	// refines.
	VPMOVMSKB Y7, R8
	VPMOVMSKB Y11, R9
	SHLQ $32, R9
	ORQ  R9, R8             // mo
	RORXQ $4, R8, R9
	RORXQ $8, R8, R13
	ORQ  R9, R13
	ANDQ R8, R13            // mo & (mo>>4 | mo>>8), and bits rotated in: found refines
	JNZ      found
	VPTEST   class7f<>(SB), Y8
	JNZ      found
	XORQ R11, R11 // no digit: nothing carries into the next block
	XORQ R12, R12
	ADDQ $64, DI
	JMP  loop

found:
	// The base64 signal (b64Signal) from mo (R8), added to the
	// candidates at the end; none without a pair of M-O (R13).
	MOVQ R13, off+40(FP)
	TESTQ R13, R13
	JZ   nosig
	MOVQ R8, R9
	SHRQ $4, R9
	ANDQ R8, R9             // p = mo & mo>>4
	MOVQ R8, R13
	SHRQ $8, R13
	ANDQ R13, R8            // q = mo & mo>>8
	MOVQ R9, R13
	SHRQ $4, R13
	MOVQ $0x0F0000000000000F, R10
	ORQ  R10, R13
	ANDQ R13, R9            // p & (p>>4 | edges)
	MOVQ R8, R13
	SHRQ $8, R13
	MOVQ $0x00FF0000000000FF, R10
	ORQ  R10, R13
	ANDQ R13, R8            // q & (q>>8 | edges)
	ORQ  R9, R8
	MOVQ R8, off+40(FP)

nosig:
	// digits
	VPADDB   Y0, Y2, Y3
	VPADDB   Y0, Y9, Y10
	VPCMPGTB Y3, Y1, Y3
	VPCMPGTB Y10, Y1, Y10
	VPMOVMSKB Y3, AX
	VPMOVMSKB Y10, CX
	SHLQ $32, CX
	ORQ  CX, AX
	// escapes and lead bytes: classes other than digits
	VPAND    Y6, Y7, Y7
	VPAND    Y6, Y11, Y11
	VPCMPEQB Y15, Y7, Y7
	VPCMPEQB Y15, Y11, Y11
	VPMOVMSKB Y7, BX
	VPMOVMSKB Y11, CX
	SHLQ $32, CX
	ORQ  CX, BX
	NOTQ BX
	// Separators by nibble lookup: byte x is one iff
	// sepLo[x&15] & sepHi[x>>4] != 0.
	VPAND    Y14, Y2, Y3
	VPSRLW   $4, Y2, Y8
	VPAND    Y14, Y8, Y8
	VPSHUFB  Y3, Y12, Y3
	VPSHUFB  Y8, Y13, Y8
	VPAND    Y8, Y3, Y3
	VPCMPEQB Y15, Y3, Y3
	VPAND    Y14, Y9, Y10
	VPSRLW   $4, Y9, Y8
	VPAND    Y14, Y8, Y8
	VPSHUFB  Y10, Y12, Y10
	VPSHUFB  Y8, Y13, Y8
	VPAND    Y8, Y10, Y10
	VPCMPEQB Y15, Y10, Y10
	VPMOVMSKB Y3, CX
	VPMOVMSKB Y10, R8
	SHLQ $32, R8
	ORQ  R8, CX
	NOTQ CX
	// BX |= D&D1&D2 | D&S1&D2&S3&D4 | D&S1&S2&D3&S4&S5&D6 (see candidates)
	SHIFTIN(AX, R11, 2, R8)
	SHIFTIN(AX, R11, 1, R9)
	ANDQ AX, R9
	ANDQ R8, R9
	ORQ  R9, BX
	SHIFTIN(CX, R12, 1, R13)
	SHIFTIN(CX, R12, 3, R14)
	SHIFTIN(AX, R11, 4, R10)
	MOVQ AX, R9
	ANDQ R13, R9
	ANDQ R8, R9
	ANDQ R14, R9
	ANDQ R10, R9
	ORQ  R9, BX
	MOVQ AX, R9
	ANDQ R13, R9
	SHIFTIN(CX, R12, 2, R14)
	ANDQ R14, R9
	SHIFTIN(AX, R11, 3, R10)
	ANDQ R10, R9
	SHIFTIN(CX, R12, 4, R14)
	ANDQ R14, R9
	SHIFTIN(CX, R12, 5, R14)
	ANDQ R14, R9
	SHIFTIN(AX, R11, 6, R10)
	ANDQ R10, R9
	ORQ  R9, BX
	// | D&S1&S2&S3&D4&S5&S6&S7&D8 (R13 = S1; R8 = D2 is free)
	MOVQ AX, R9
	ANDQ R13, R9
	SHIFTIN(CX, R12, 2, R14)
	ANDQ R14, R9
	SHIFTIN(CX, R12, 3, R14)
	ANDQ R14, R9
	SHIFTIN(AX, R11, 4, R10)
	ANDQ R10, R9
	SHIFTIN(CX, R12, 5, R14)
	ANDQ R14, R9
	SHIFTIN(CX, R12, 6, R14)
	ANDQ R14, R9
	SHIFTIN(CX, R12, 7, R14)
	ANDQ R14, R9
	SHIFTIN(AX, R11, 8, R10)
	ANDQ R10, R9
	ORQ  R9, BX
	TESTQ BX, BX
	JZ   nocand
	// Prune (see prune in detector.go): for each stretch of digits and
	// separators (M = d|s) holding a digit candidate, count its digits,
	// on into the block before (R11, R12) and the next one; keep its
	// candidates only if they reach 12, or an escape or non-ASCII byte
	// (H) follows, or the stretch runs on too far to tell. CX and DX are
	// reloaded after; c+48(FP) holds the count of the stretch that ends
	// the block before.
	MOVQ CX, s+64(FP)
	MOVQ R11, R15
	ORQ  R12, R15
	XORQ R14, R14
	BTQ  $63, R15
	JCC  pc0
	NOTQ R15
	MOVQ $99, R14
	BSRQ R15, R15
	JZ   pc0
	INCQ R15
	SHRXQ R15, R11, R14
	POPCNTQ R14, R14

pc0:
	MOVQ R14, c+48(FP)
	// W (in d+56(FP)): digits in groups of three or more, of one, and
	// the group that ends the block; a stretch counts its W digits + 2.
	SHIFTIN(AX, R11, 1, R9)
	SHIFTIN(AX, R11, 2, R10)
	MOVQ AX, R13
	ANDQ R9, R13
	ANDQ R10, R13           // T
	MOVQ R13, R14
	SHRQ $1, R14
	ORQ  R14, R13
	SHRQ $1, R14
	ORQ  R14, R13           // T | T>>1 | T>>2
	MOVQ AX, R14
	SHRQ $1, R14
	ORQ  R9, R14
	NOTQ R14
	ANDQ AX, R14            // iso
	ORQ  R14, R13
	MOVQ AX, R14
	NOTQ R14
	XORQ R15, R15
	BSRQ R14, R14
	JZ   wend
	LEAQ 1(R14), R15

wend:
	MOVQ $-1, R14
	BZHIQ R15, R14, R15
	NOTQ R15                // the group the block ends in
	ORQ  R15, R13
	MOVQ R13, d+56(FP)
	VPMOVMSKB Y2, R8
	VPMOVMSKB Y9, R9
	SHLQ $32, R9
	ORQ  R9, R8             // bytes >= 0x80
	MOVQ AX, R9
	NOTQ R9
	ANDQ BX, R9             // candidates at escapes and lead bytes
	ORQ  R9, R8             // H
	MOVQ R9, R10            // kept candidates
	MOVQ AX, R13
	ORQ  CX, R13
	NOTQ R13                // ^M
	MOVQ BX, R9
	ANDQ AX, R9             // digit candidates left to look at

ploop:
	TESTQ R9, R9
	JZ   pdone
	BSFQ R9, R14            // k
	BZHIQ R14, R13, R15     // ^M below k
	SHLQ $1, R15            // (bit 63 is clear: k <= 63)
	ORQ  $1, R15
	BSRQ R15, CX            // lo: one past the highest non-stretch byte below k
	SHRXQ R14, R13, R15
	TZCNTQ R15, R15
	ADDQ R15, R14           // e: end of the stretch (>= 64: past the block)
	MOVQ $-1, DX
	BZHIQ R14, DX, DX       // bits below e
	MOVQ $-1, R15
	BZHIQ CX, R15, R15      // bits below lo
	NOTQ R15
	ANDQ R15, DX            // the stretch
	MOVQ DX, R15
	NOTQ R15
	ANDQ R15, R9
	MOVQ d+56(FP), R15
	ANDQ DX, R15
	POPCNTQ R15, R15
	ADDQ $2, R15            // its W digits + 2
	TESTQ CX, CX
	JNZ  plo
	ADDQ c+48(FP), R15

plo:
	CMPQ R14, $64
	JAE  pend
	BTQ  R14, R8
	JCS  pkeep
	CMPQ R15, $12
	JGE  pkeep
	// Too few digits: kept only if markup follows that may continue the
	// number (markupKeep): after a quote or '<' the digits right before
	// must be 4-8 (or reach back to the block's start; see lastGroup),
	// and for '=' too a digit or an introHigh byte must come close after
	// it (markupWindow), or the window runs past the region (n).
	LEAQ (SI)(DI*1), R12
	MOVBLZX (R12)(R14*1), R12
	CMPQ R12, $0x1b         // ESC: a terminal escape sequence may go on
	JEQ  pkeep
	CMPQ R12, $0x3d
	JEQ  pqp
	CMPQ R12, $0x22
	JEQ  pq
	CMPQ R12, $0x27
	JEQ  pq
	CMPQ R12, $0x3c
	JNE  ploop
	MOVQ $0x3ffff, R11      // '<': bytes 3..20 on
	LEAQ 3(R14), R15
	JMP  plast

pq:
	MOVQ $0x3f, R11         // a quote: bytes 2..7 on
	LEAQ 2(R14), R15

plast:
	MOVQ AX, R12
	NOTQ R12
	BZHIQ R14, R12, R12
	BSRQ R12, R12
	JZ   pwin
	NEGQ R12
	ADDQ R14, R12
	DECQ R12
	CMPQ R12, $4
	JLT  ploop
	CMPQ R12, $8
	JGT  ploop
	JMP  pwin

pqp:
	MOVQ $0x7f, R11         // '=': bytes 2..8 on
	LEAQ 2(R14), R15

pwin:
	BSRQ R11, R14
	ADDQ R15, R14
	CMPQ R14, $64
	JAE  pfar
	MOVQ AX, R12
	ORQ  R8, R12            // digits | introHigh bytes (H)
	SHRXQ R15, R12, R12
	ANDQ R11, R12
	JNZ  pkeep
	JMP  ploop

pfar:
	// The window (bytes R15..R14 of the block) runs past the block: read
	// its bytes if the region holds them, else keep.
	LEAQ (DI)(R14*1), R12
	CMPQ R12, n+8(FP)
	JAE  pkeep
	LEAQ (SI)(DI*1), R12

pfbyte:
	MOVBLZX (R12)(R15*1), R11
	CMPQ R11, $0x80
	JAE  pkeep
	CMPQ R11, $0x25
	JEQ  pkeep
	CMPQ R11, $0x26
	JEQ  pkeep
	CMPQ R11, $0x5c
	JEQ  pkeep
	SUBQ $0x30, R11
	CMPQ R11, $10
	JCS  pkeep
	INCQ R15
	CMPQ R15, R14
	JLS  pfbyte
	JMP  ploop

pcnt:
	CMPQ R15, $12
	JLT  ploop

pkeep:
	MOVQ BX, R15
	ANDQ DX, R15
	ORQ  R15, R10
	JMP  ploop

pend:
	// The stretch runs into the next block (the last stretch: R9 is 0,
	// H is free): count on there if that block is whole in the region.
	LEAQ 128(DI), R14
	CMPQ R14, n+8(FP)
	JHI  pkeep
	VMOVDQU 64(SI)(DI*1), Y3
	VMOVDQU 96(SI)(DI*1), Y10
	VPADDB   Y0, Y3, Y7
	VPCMPGTB Y7, Y1, Y7
	VPADDB   Y0, Y10, Y11
	VPCMPGTB Y11, Y1, Y11
	VPMOVMSKB Y7, R8
	VPMOVMSKB Y11, R14
	SHLQ $32, R14
	ORQ  R14, R8            // its digits
	VPAND    Y14, Y3, Y7
	VPSRLW   $4, Y3, Y8
	VPAND    Y14, Y8, Y8
	VPSHUFB  Y7, Y12, Y7
	VPSHUFB  Y8, Y13, Y8
	VPAND    Y8, Y7, Y7
	VPCMPEQB Y15, Y7, Y7
	VPAND    Y14, Y10, Y11
	VPSRLW   $4, Y10, Y8
	VPAND    Y14, Y8, Y8
	VPSHUFB  Y11, Y12, Y11
	VPSHUFB  Y8, Y13, Y8
	VPAND    Y8, Y11, Y11
	VPCMPEQB Y15, Y11, Y11
	VPMOVMSKB Y7, CX
	VPMOVMSKB Y11, R14
	SHLQ $32, R14
	ORQ  R14, CX            // its non-separators
	MOVQ R8, R14
	NOTQ R14
	ANDQ R14, CX            // its ^M
	TZCNTQ CX, R14          // where the stretch ends there
	CMPQ R14, $64
	JAE  pkeep
	BZHIQ R14, R8, R8
	POPCNTQ R8, R8
	ADDQ R8, R15
	LEAQ 64(SI)(DI*1), R8
	MOVBLZX (R8)(R14*1), R8
	CMPQ R8, $0x80
	JAE  pkeep
	CMPQ R8, $0x25
	JEQ  pkeep
	CMPQ R8, $0x26
	JEQ  pkeep
	CMPQ R8, $0x5c
	JEQ  pkeep
	CMPQ R8, $0x1b
	JEQ  pkeep
	// Markup there (nextStretch): a quote or '<' after a group of 4-8
	// digits (any number when they reach back to that block's start), or '=',
	// keeps the stretch if a digit or an introHigh byte comes close
	// after it (markupWindow) or the window runs past the region.
	LEAQ 64(SI)(DI*1), R12  // the next block
	CMPQ R8, $0x3d
	JEQ  pneq
	CMPQ R8, $0x22
	JEQ  pnq
	CMPQ R8, $0x27
	JEQ  pnq
	CMPQ R8, $0x3c
	JNE  pcnt

pnq:
	MOVQ R8, CX             // the markup byte
	MOVQ R14, R11

pnback:
	TESTQ R11, R11
	JZ   pnset              // the group reaches back to the block's start
	MOVBLZX -1(R12)(R11*1), R8
	SUBQ $0x30, R8
	CMPQ R8, $10
	JAE  pngrp
	DECQ R11
	JMP  pnback

pngrp:
	MOVQ R14, R8
	SUBQ R11, R8            // digits of the group before the markup
	CMPQ R8, $4
	JLT  pcnt
	CMPQ R8, $8
	JGT  pcnt

pnset:
	LEAQ 2(R14), R8         // a quote: bytes 2..7 on
	LEAQ 7(R14), R11
	CMPQ CX, $0x3c
	JNE  pnwin
	LEAQ 3(R14), R8         // '<': bytes 3..20 on
	LEAQ 20(R14), R11
	JMP  pnwin

pneq:
	LEAQ 2(R14), R8         // '=': bytes 2..8 on
	LEAQ 8(R14), R11

pnwin:
	LEAQ 64(DI)(R11*1), CX
	CMPQ CX, n+8(FP)
	JAE  pkeep

pnbyte:
	MOVBLZX (R12)(R8*1), CX
	CMPQ CX, $0x80
	JAE  pkeep
	CMPQ CX, $0x25
	JEQ  pkeep
	CMPQ CX, $0x26
	JEQ  pkeep
	CMPQ CX, $0x5c
	JEQ  pkeep
	SUBQ $0x30, CX
	CMPQ CX, $10
	JCS  pkeep
	INCQ R8
	CMPQ R8, R11
	JLS  pnbyte
	JMP  pcnt

pdone:
	MOVQ R10, BX
	ORQ  off+40(FP), BX
	MOVQ s+64(FP), CX
	MOVQ n+8(FP), DX
	TESTQ BX, BX
	JNZ  ret

next:
	MOVQ AX, R11
	MOVQ CX, R12
	ADDQ $64, DI
	JMP  loop

nocand:
	// No candidate but perhaps the base64 signal (CX, DX are intact).
	MOVQ off+40(FP), BX
	TESTQ BX, BX
	JZ   next

ret:
	VZEROUPPER
	MOVQ DI, off+40(FP)
	MOVQ BX, c+48(FP)
	MOVQ AX, d+56(FP)
	MOVQ CX, s+64(FP)
	RET

none:
	VZEROUPPER
	MOVQ DI, off+40(FP)
	MOVQ $0, c+48(FP)
	MOVQ $0, d+56(FP)
	MOVQ $0, s+64(FP)
	RET
