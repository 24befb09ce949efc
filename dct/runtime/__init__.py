"""Running a process: its process group and threads, telling peer failures apart, the run
directory, early stops, and the entry every launcher goes through."""
