// Work in progress: filled by its issue.
