//! One report model feeding the JSON result, CSV, HTML and the console summary.
