"""`medal simulate`: the active-learning loop on a labelled data set, with its masks as the annotator."""
