// SPDX-License-Identifier: GPL-2.0
// Guest helper: ends the VM through QEMU's isa-debug-exit device.
// QEMU exits with (code << 1) | 1, so the host sees 1 for code 0 (pass) and 3 for
// code 1 (fail). Debian's kernels have no /dev/port, hence ioperm + outb here.
#include <stdio.h>
#include <stdlib.h>
#include <sys/io.h>
#include <unistd.h>

int main(int argc, char** argv) {
  unsigned long port = 0xf4;
  int code = argc > 1 ? atoi(argv[1]) : 1;

  if (argc > 2)
    port = strtoul(argv[2], NULL, 0);
  if (ioperm(port, 4, 1) != 0) {
    perror("vm-exit: ioperm");
    return 1;
  }
  sync();
  outl((unsigned int)code, port);
  // Not reached when the device exists.
  fprintf(stderr, "vm-exit: no isa-debug-exit device at 0x%lx\n", port);
  return 1;
}
