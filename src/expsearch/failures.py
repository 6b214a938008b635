"""The classes of a failed experiment: one list for the trainer that records
them and the self-healing that reads them.

    config   the config is not a valid point of the space
    data     a feature store, manifest or clip table that cannot be used
    nan      a non-finite training loss
    oom      out of memory (device or host)
    timeout  the job's time limit (recorded by a scheduler, never by the trainer)
    crash    anything else
"""

ERROR_CLASSES = ("config", "data", "nan", "oom", "timeout", "crash")
