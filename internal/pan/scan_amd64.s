//go:build amd64 && !purego

#include "textflag.h"

// func endMasksAVX2(p *byte, n int, prev uint64) (off int, mask uint64)
//
// Scans 64-byte blocks p[off:off+64] for off = 0, 64, ... < n (n is a
// multiple of 64) and stops at the first block holding the last byte of a
// run of four ASCII digits. mask has bit k set iff p[off+k-3..off+k] are
// digits; prev is the digit bit mask of the 64 bytes before p (only its top
// three bits matter). If no block qualifies, off == n and mask == 0.
//
// Digits are found with one add and one signed compare per 32 bytes:
// x+0x50 lands in 0x80..0x89 (signed -128..-119) exactly for '0'..'9'.
TEXT ·endMasksAVX2(SB), NOSPLIT, $0-40
	MOVQ p+0(FP), SI
	MOVQ n+8(FP), DX
	MOVQ prev+16(FP), R8
	XORQ DI, DI
	MOVQ $0x5050505050505050, AX
	MOVQ AX, X0
	VPBROADCASTQ X0, Y0
	MOVQ $0x8a8a8a8a8a8a8a8a, AX
	MOVQ AX, X1
	VPBROADCASTQ X1, Y1

loop:
	CMPQ DI, DX
	JAE  none
	VMOVDQU (SI)(DI*1), Y2
	VMOVDQU 32(SI)(DI*1), Y3
	VPADDB  Y0, Y2, Y2
	VPADDB  Y0, Y3, Y3
	VPCMPGTB Y2, Y1, Y2
	VPCMPGTB Y3, Y1, Y3
	VPMOVMSKB Y2, AX
	VPMOVMSKB Y3, CX
	SHLQ $32, CX
	ORQ  CX, AX
	TESTQ AX, AX
	JNZ  runs
	XORQ R8, R8
	ADDQ $64, DI
	JMP  loop

runs:
	// BX = m & (m<<1 | prev>>63) & (m<<2 | prev>>62) & (m<<3 | prev>>61)
	MOVQ AX, BX
	SHLQ $1, BX
	MOVQ R8, CX
	SHRQ $63, CX
	ORQ  CX, BX
	ANDQ AX, BX
	MOVQ AX, R9
	SHLQ $2, R9
	MOVQ R8, CX
	SHRQ $62, CX
	ORQ  CX, R9
	ANDQ R9, BX
	MOVQ AX, R9
	SHLQ $3, R9
	MOVQ R8, CX
	SHRQ $61, CX
	ORQ  CX, R9
	ANDQ R9, BX
	MOVQ AX, R8
	TESTQ BX, BX
	JNZ  found
	ADDQ $64, DI
	JMP  loop

found:
	VZEROUPPER
	MOVQ DI, off+24(FP)
	MOVQ BX, mask+32(FP)
	RET

none:
	VZEROUPPER
	MOVQ DI, off+24(FP)
	MOVQ $0, mask+32(FP)
	RET
