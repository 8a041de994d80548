"""Training: recipe parsing and checks, the device guard, run setup (splits, long examples, resume), the SFT and GRPO
main bodies, the execution reward, the GRPO prompt filter, callbacks, and the CPU LM-head switch."""
