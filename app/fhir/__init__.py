"""HL7 FHIR R4 (4.0.1) views of what Homework API holds, read-only: templates as Questionnaires,
completions as QuestionnaireResponses (with the measures' scores as Observations), assignments
as CarePlans, occurrences as Tasks, clients and clinicians as Patient and Practitioner stubs.

The mappings build plain JSON (dicts), which the tests validate with the `fhir.resources` R4B
models; docs/FHIR.md is their reference. Only the Questionnaire import parses with the models.
"""
