"""The attributes of DICOM PS3.15 Table E.1-1 handled beyond dicognito's rules.

dicognito (the engine of :func:`~sklearn_medprep.dicom.deidentify_dicom`)
replaces every person name (PN), every non-class UID (UI), the patient's
identifiers, address and the institution, and shifts every date (DA, DT) and
the times paired with them. The Basic Application Level Confidentiality
Profile (PS3.15 Annex E, Table E.1-1) also removes (action X) or empties
(action Z) attributes that carry free text or patient characteristics; this
module lists those, by pydicom keyword. Private tags (the profile's default:
no Retain Safe Private Option) and the overlay and curve groups (60xx, 50xx)
are removed by group.
"""

__all__ = ["EMPTY", "REMOVE", "REMOVED_GROUPS"]

#: Action X: removed (unless the user keeps them, e.g. the Retain Patient
#: Characteristics or Retain Description options of PS3.15).
REMOVE = frozenset({
    "AcquisitionComments", "AcquisitionDeviceProcessingDescription",
    "AcquisitionProtocolDescription", "ActualHumanPerformersSequence",
    "AdditionalPatientHistory", "AdmissionID", "AdmittingDiagnosesCodeSequence",
    "AdmittingDiagnosesDescription", "Allergies", "Arbitrary",
    "AuthorObserverSequence", "BranchOfService",
    "CommentsOnThePerformedProcedureStep",
    "ConfidentialityConstraintOnPatientDataDescription",
    "ContributionDescription", "CountryOfResidence", "CurrentPatientLocation",
    "CustodialOrganizationSequence", "DataSetTrailingPadding",
    "DerivationDescription", "DeviceSerialNumber", "DigitalSignaturesSequence",
    "DischargeDiagnosisDescription", "DistributionAddress", "DistributionName",
    "EthnicGroup", "FrameComments", "GantryID", "HumanPerformerName",
    "HumanPerformerOrganization", "IconImageSequence", "IdentifyingComments",
    "ImageComments", "ImagePresentationComments", "ImagingServiceRequestComments",
    "InstitutionAddress", "InstitutionalDepartmentName",
    "InsurancePlanIdentification",
    "IntendedRecipientsOfResultsIdentificationSequence",
    "InterpretationApproverSequence", "InterpretationAuthor",
    "InterpretationDiagnosisDescription", "InterpretationIDIssuer",
    "InterpretationRecorder", "InterpretationText", "InterpretationTranscriber",
    "IssuerOfAdmissionID", "IssuerOfPatientID", "IssuerOfServiceEpisodeID",
    "MedicalAlerts", "MedicalRecordLocator", "MilitaryRank",
    "ModifiedAttributesSequence", "ModifyingDeviceID",
    "ModifyingDeviceManufacturer", "NameOfPhysiciansReadingStudy",
    "NamesOfIntendedRecipientsOfResults", "Occupation",
    "OperatorIdentificationSequence", "OperatorsName",
    "OriginalAttributesSequence", "OtherPatientIDs", "OtherPatientIDsSequence",
    "OtherPatientNames", "ParticipantSequence", "PatientAddress", "PatientAge",
    "PatientBirthName", "PatientBirthTime", "PatientComments",
    "PatientInsurancePlanCodeSequence", "PatientMotherBirthName",
    "PatientPrimaryLanguageCodeSequence",
    "PatientPrimaryLanguageModifierCodeSequence", "PatientReligiousPreference",
    "PatientSexNeutered", "PatientSize", "PatientState",
    "PatientTelephoneNumbers", "PatientTransportArrangements", "PatientWeight",
    "PerformedLocation", "PerformedProcedureStepDescription",
    "PerformedProcedureStepEndDate", "PerformedProcedureStepEndTime",
    "PerformedProcedureStepID", "PerformedProcedureStepStartDate",
    "PerformedProcedureStepStartTime", "PerformedStationAETitle",
    "PerformedStationGeographicLocationCodeSequence", "PerformedStationName",
    "PerformedStationNameCodeSequence",
    "PerformingPhysicianIdentificationSequence", "PerformingPhysicianName",
    "PersonAddress", "PersonIdentificationCodeSequence",
    "PersonTelephoneNumbers", "PhysicianApprovingInterpretation",
    "PhysiciansOfRecord", "PhysiciansOfRecordIdentificationSequence",
    "PhysiciansReadingStudyIdentificationSequence", "PreMedication",
    "PregnancyStatus", "ProtocolName", "ReasonForStudy",
    "ReasonForTheImagingServiceRequest", "ReferencedPatientAliasSequence",
    "ReferencedPatientPhotoSequence", "ReferringPhysicianAddress",
    "ReferringPhysicianIdentificationSequence",
    "ReferringPhysicianTelephoneNumbers", "RegionOfResidence",
    "RequestAttributesSequence", "RequestedContrastAgent",
    "RequestedProcedureComments", "RequestedProcedureID",
    "RequestedProcedureLocation", "RequestingPhysician", "RequestingService",
    "ResponsibleOrganization", "ResponsiblePerson", "ResultsComments",
    "ResultsDistributionListSequence", "ResultsIDIssuer",
    "ScheduledHumanPerformersSequence", "ScheduledPatientInstitutionResidence",
    "ScheduledPerformingPhysicianIdentificationSequence",
    "ScheduledPerformingPhysicianName", "ScheduledProcedureStepDescription",
    "ScheduledProcedureStepEndDate", "ScheduledProcedureStepEndTime",
    "ScheduledProcedureStepLocation", "ScheduledProcedureStepStartDate",
    "ScheduledProcedureStepStartTime", "ScheduledStationAETitle",
    "ScheduledStationGeographicLocationCodeSequence", "ScheduledStationName",
    "ScheduledStationNameCodeSequence", "ScheduledStudyLocation",
    "ScheduledStudyLocationAETitle", "SeriesDescription",
    "ServiceEpisodeDescription", "ServiceEpisodeID", "SmokingStatus",
    "SpecialNeeds", "StudyComments", "StudyDescription", "StudyIDIssuer",
    "TextComments", "TextString", "TopicAuthor", "TopicKeywords",
    "TopicSubject", "TopicTitle", "VerifyingObserverIdentificationCodeSequence",
    "VerifyingObserverName", "VerifyingObserverSequence",
    "VerifyingOrganization", "VisitComments",
})

#: Action Z: emptied (type 2 attributes must stay, with no value).
EMPTY = frozenset({
    "PatientBirthDate", "PatientSex", "ReferringPhysicianName",
    "ContentCreatorName",
})

#: Repeating groups removed whole: curves (50xx) and overlays (60xx), which
#: can hold text drawn over the image.
REMOVED_GROUPS = ((0x5000, 0x50FF), (0x6000, 0x60FF))
