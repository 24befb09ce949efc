import os

# Tests spawn several ranks on two cores; one thread per process avoids oversubscription.
os.environ.setdefault("OMP_NUM_THREADS", "1")
