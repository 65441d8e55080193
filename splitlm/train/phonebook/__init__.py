"""The phonebook memorisation experiment (paper Sec. 3.2, Fig. 2): synthetic facts, the
pretrain-then-branch sweep over split fractions, exact-match fact accuracy and the plot."""
