"""Context-manager behaviour shared by the streamed writers: commit on success, discard the
temporary file on any exception."""


class CommitOnExit:
    def open(self):
        return self

    def __enter__(self):
        self.open()
        return self

    def __exit__(self, exc_type, exc, tb):
        if exc_type is None:
            self.close()
        else:
            self.abort()
        return False
