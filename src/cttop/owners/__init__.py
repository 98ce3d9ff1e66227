"""Who owns a flow: the process behind its socket, and the container, pod or unit around that process."""
